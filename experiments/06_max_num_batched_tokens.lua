-- Claim 6 (issue #7): --max-num-batched-tokens trades TTFT against ITL: 131072 -> 262144 for
-- throughput, small budgets (with chunked prefill) for smooth decoding.
-- Part A: large budgets without chunked prefill, offline long prompts (the budget caps the
-- prefill burst). Part B: chunked prefill with 512..16384-token budgets under Poisson load.
--
-- On hardware a budget's profiling step (the activations of a full budget, kernels/cuda_executor.cpp)
-- is taken out of the KV pool, or does not fit at all: a run that cannot start is reported.
--
--   twinfer exp experiments/06_max_num_batched_tokens.lua --backend sim --out experiments/results/sim/06_max_num_batched_tokens [n=1]
--       [big=131072,262144] [small=512,16384]   (part A / part B budgets; the verdict needs
--       131072 and 262144 in big, and compares the smallest and largest of small)
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

-- Part B first: on hardware a part A budget that fails to start goes last.
local small = E.list("small", { 512, 1024, 2048, 4096, 8192, 16384 })
table.sort(small)
local b = E.run_each(twinfer.points(cfg({
  arrival = "poisson", rate = 12, num_requests = count(1200), max_requests = count(1200),
  max_model_len = 8192, enable_chunked_prefill = true,
  input_len = "lognormal:1500:0.6", output_len = "lognormal:200:0.6",
}), { max_num_batched_tokens = small }))
local big = E.list("big", { 16384, 131072, 262144 })
local a = E.run_each(twinfer.points(cfg({
  arrival = "offline", num_requests = count(1500), max_requests = count(1500), max_model_len = 8192,
  input_len = "lognormal:1500:0.6", output_len = "lognormal:200:0.6", max_num_seqs = 512,
}), { max_num_batched_tokens = big }))
local rows, failed = {}, {}
for i, r in ipairs(b) do
  if r.run_failed then
    rows[i] = { budget = small[i], ran = "failed" }
    failed[#failed + 1] = "budget " .. small[i] .. " (part B): " .. r.error
  else
    rows[i] = { budget = small[i], ran = "yes", ttft_mean_ms = r.ttft_ms.mean, ttft_p99_ms = r.ttft_ms.p99,
      itl_p50_ms = r.itl_ms.p50, itl_p99_ms = r.itl_ms.p99, tok_s = r.output_tok_per_s }
  end
end
local arows, at = {}, {}
for i, r in ipairs(a) do
  if r.run_failed then
    arows[i] = { budget = big[i], ran = "failed" }
    failed[#failed + 1] = "budget " .. big[i] .. " (part A): " .. r.error
  else
    arows[i] = { budget = big[i], ran = "yes", tok_s = r.output_tok_per_s, ttft_mean_ms = r.ttft_ms.mean,
      itl_p99_ms = r.itl_ms.p99, kv_capacity_tokens = r.memory.capacity_tokens,
      activation_gib = r.memory.activation_bytes / 2 ^ 30 }
  end
  at[big[i]] = arows[i]
end
local a1, a2 = at[131072], at[262144]
assert(a1 and a2, "big= must include 131072 and 262144 (the claim's budgets)")
local a_ok = a1.ran == "yes" and a2.ran == "yes"
local b1, b2 = rows[1], rows[#rows]
local b_ok = b1.ran == "yes" and b2.ran == "yes"
local cols = { "budget", "ttft_mean_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tok_s" }
local notes = {}
if E.ON_HW then
  notes[1] = "On hardware each budget is profiled at start-up with a step of that many tokens; its activations (about 130 KiB per token for Llama-3-8B) come out of the KV pool (columns activation_gib, kv_capacity_tokens), and a budget whose profiling step does not fit the GPU cannot run at all."
  for _, f in ipairs(failed) do notes[#notes + 1] = "Failed run: " .. f end
end
finish({
  id = "06", slug = "max_num_batched_tokens", title = "--max-num-batched-tokens: TTFT vs ITL",
  claim = "Raising --max-num-batched-tokens from 131072 to 262144 raises throughput; small budgets lower inter-token latency at the cost of time to first token.",
  setup = "A: offline batch of " .. count(1500) .. " requests (input lognormal median 1500, output median 200), --max-num-seqs 512, no chunked prefill, budgets " .. table.concat(big, "/") .. ". B: " .. count(1200) .. " requests of the same shape at Poisson 12 req/s with --enable-chunked-prefill, budgets " .. table.concat(small, "/") .. ".",
  metrics = {
    E.metric_if(a_ok, { label = "offline throughput 131072 -> 262144", value = a_ok and pct(a2.tok_s, a1.tok_s), unit = "%", guide = "higher", lo = 0, dir = "up" }, "a part A run failed to start, see the notes"),
    E.metric_if(b_ok, { label = "P99 ITL, budget " .. b1.budget .. " vs " .. b2.budget, value = b_ok and pct(b1.itl_p99_ms, b2.itl_p99_ms), unit = "%", guide = "lower ITL with a small budget", hi = 0, dir = "down" }, "a part B run failed"),
    E.metric_if(b_ok, { label = "mean TTFT, budget " .. b1.budget .. " vs " .. b2.budget, value = b_ok and pct(b1.ttft_mean_ms, b2.ttft_mean_ms), unit = "%", guide = "higher TTFT with a small budget", lo = 0, dir = "up" }, "a part B run failed"),
  },
  table_md = "Part A (offline, no chunked prefill):\n\n" .. twinfer.table(arows, { "budget", "ran", "tok_s", "ttft_mean_ms", "itl_p99_ms", "kv_capacity_tokens", "activation_gib" })
    .. "\nPart B (Poisson 12 req/s, chunked prefill):\n\n" .. twinfer.table(rows, cols),
  figure = { x = "budget", y = { "ttft_mean_ms" }, y2 = { "itl_p99_ms" }, xlabel = "--max-num-batched-tokens (chunked prefill)", ylabel = "mean TTFT (ms)", y2label = "P99 ITL (ms)", logx = true },
  notes = notes,
}, rows, cols)
