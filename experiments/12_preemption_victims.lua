-- Claim 12 (issue #7): which request to preempt under memory pressure: vLLM's last-arrived vs a
-- score wait_time / (priority * generated) (policies/victim_score.cpp uses priority + 1).
-- Offline batch on a deliberately small pool; recomputed tokens = prefill tokens run minus
-- prompt tokens (no prefix caching), i.e. the work preemption threw away.
--
--   twinfer exp experiments/12_preemption_victims.lua --backend sim --out experiments/results/sim/12_preemption_victims [n=1]
--       [arrivals=offline,poisson] (the verdict needs poisson; offline only shows the two rules agree)
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local victims = { "last-arrived", "score" }
local runs = {}
local arrivals = E.list("arrivals", { "offline", "poisson" })
assert(E.has(arrivals, "poisson"), "arrivals= must include poisson (the verdict's runs)")
for _, arrival in ipairs(arrivals) do
  for _, v in ipairs(victims) do
    runs[#runs + 1] = cfg({ name = arrival .. "," .. v, arrival = arrival, rate = 10, preemption_victim = v,
      num_requests = count(800), max_requests = count(800), input_len = "lognormal:800:0.6",
      output_len = "lognormal:400:0.8", num_gpu_blocks_override = 2000, max_num_seqs = 128,
      max_model_len = 8192, per_request = true, per_step = true })
  end
end
local res = twinfer.run_all(runs)
local rows = {}
for i, r in ipairs(res) do
  local recompute = sum(r.per_step.prefill_tokens) - sum(r.per_request.prompt_len)
  local maxp = 0
  for _, p in ipairs(r.per_request.num_preemptions) do maxp = math.max(maxp, p) end
  rows[i] = { run = r.name, preemptions = r.preemptions, max_per_request = maxp, recomputed_tokens = recompute,
    tok_s = r.output_tok_per_s, e2e_mean_ms = r.e2e_ms.mean, e2e_p99_ms = r.e2e_ms.p99 }
end
local cols = { "run", "preemptions", "max_per_request", "recomputed_tokens", "tok_s", "e2e_mean_ms", "e2e_p99_ms" }
-- Offline, every request arrived at t=0: wait_time is equal for all, so the score picks the
-- fewest generated tokens, which is the last admitted request, the same as last-arrived.
-- The verdict therefore uses the Poisson runs, where the two rules differ.
local la, sc
for _, r in ipairs(rows) do
  if r.run == "poisson,last-arrived" then la = r elseif r.run == "poisson,score" then sc = r end
end
finish({
  id = "12", slug = "preemption_victims", title = "Preemption victims: last-arrived vs score",
  claim = "Under memory pressure, choosing the victim by wait_time / (priority * generated) instead of vLLM's last-arrived rule wastes less recomputation and improves latency.",
  setup = count(800) .. " requests (input lognormal median 800, output median 400) on a 2000-block pool (32k tokens), --max-num-seqs 128, recompute preemption; " .. (E.has(arrivals, "offline") and "offline and " or "") .. "at Poisson 10 req/s. Verdict metrics at Poisson 10 req/s (offline the two rules pick the same victims: equal wait times).",
  metrics = {
    { label = "recomputed tokens, score vs last-arrived (Poisson)", value = pct(sc.recomputed_tokens, la.recomputed_tokens), unit = "%", guide = "less wasted work", hi = 0, dir = "down" },
    { label = "P99 e2e, score vs last-arrived (Poisson)", value = pct(sc.e2e_p99_ms, la.e2e_p99_ms), unit = "%", guide = "lower", hi = 0, dir = "down" },
    { label = "throughput, score vs last-arrived (Poisson)", value = pct(sc.tok_s, la.tok_s), unit = "%", guide = "not lower", lo = 0, dir = "up" },
  },
  table_md = twinfer.table(rows, cols),
  figure = { kind = "bars", x = "run", y = { "recomputed_tokens" }, xlabel = "run", ylabel = "recomputed tokens" },
  notes = { "All requests have priority 0, so the score reduces to wait_time / generated." },
}, rows, cols)
