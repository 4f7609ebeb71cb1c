-- Claim 8 (issue #7): FCFS vs priority vs shortest-job-first: mean latency, tail, starvation.
-- Overloaded Poisson stream with heavy-tailed output lengths; priority classes come from
-- scripts/lua/priority_classes.lua (every 4th request interactive), since workloads carry none.
--
--   twinfer exp experiments/08_scheduling_policies.lua --backend sim --out experiments/results/sim/08_scheduling_policies [n=1] [rate=R]
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local PRIO = "lua:scripts/lua/priority_classes.lua"
local base = cfg({
  arrival = "poisson", rate = tonumber(A.rate or 45), num_requests = count(2000), max_requests = count(2000),
  input_len = "lognormal:600:0.8", output_len = "lognormal:200:1.0", max_num_seqs = 64,
  max_model_len = 8192, per_request = true,
})
local policies = { "fcfs", "sjf", PRIO }
local res = twinfer.sweep(base, { scheduling_policy = policies })
local function stats(r)
  local q, e2e, e2e_hi, e2e_lo, lens = r.per_request, {}, {}, {}, {}
  local maxq, long_q = 0, {}
  for i = 1, #q.id do
    if q.finished[i] then
      e2e[#e2e + 1] = q.e2e_ms[i]
      if q.id[i] % 4 == 0 then e2e_hi[#e2e_hi + 1] = q.e2e_ms[i] else e2e_lo[#e2e_lo + 1] = q.e2e_ms[i] end
      maxq = math.max(maxq, q.queue_ms[i])
      lens[#lens + 1] = { q.prompt_len[i] + q.output_len[i], q.queue_ms[i] }
    end
  end
  -- Starvation: mean queueing delay of the longest 10% of jobs.
  table.sort(lens, function(x, y) return x[1] > y[1] end)
  local k = math.max(1, #lens // 10)
  for i = 1, k do long_q[#long_q + 1] = lens[i][2] end
  return { mean_e2e_ms = sum(e2e) / #e2e, p99_e2e_ms = r.e2e_ms.p99, max_queue_ms = maxq,
    long_queue_ms = sum(long_q) / #long_q, hi_e2e_ms = sum(e2e_hi) / #e2e_hi, lo_e2e_ms = sum(e2e_lo) / #e2e_lo,
    tok_s = r.output_tok_per_s }
end
local rows, names = {}, { "fcfs", "sjf", "priority" }
for i, r in ipairs(res) do rows[i] = stats(r); rows[i].policy = names[i] end
local F, S, P = rows[1], rows[2], rows[3]
local cols = { "policy", "mean_e2e_ms", "p99_e2e_ms", "max_queue_ms", "long_queue_ms", "hi_e2e_ms", "lo_e2e_ms", "tok_s" }
finish({
  id = "08", slug = "scheduling_policies", title = "FCFS vs priority vs shortest-job-first",
  claim = "Shortest-job-first cuts mean latency but can starve long requests (worse tail); priority scheduling favours the important class at the others' expense; FCFS is fair but has head-of-line blocking.",
  setup = count(2000) .. " requests at Poisson " .. base.rate .. " req/s (overload), input lognormal median 600, output lognormal median 200 sigma 1.0, --max-num-seqs 64. SJF is oracle SJF on prompt+output length (policies/queue_sjf.cpp). Priority: vLLM's (priority, arrival) order with every 4th request in the high class. Starvation = mean queueing delay of the longest 10% of jobs.",
  metrics = {
    { label = "mean e2e latency, SJF vs FCFS", value = pct(S.mean_e2e_ms, F.mean_e2e_ms), unit = "%", guide = "lower", hi = 0, dir = "down" },
    { label = "queueing delay of the longest 10% of jobs, SJF vs FCFS", value = pct(S.long_queue_ms, F.long_queue_ms), unit = "%", guide = "higher (starvation)", lo = 0, dir = "up" },
    { label = "P99 e2e latency, SJF vs FCFS", value = pct(S.p99_e2e_ms, F.p99_e2e_ms), unit = "%", guide = "higher tail", lo = 0, dir = "up" },
    { label = "high-class mean e2e, priority vs FCFS", value = pct(P.hi_e2e_ms, F.hi_e2e_ms), unit = "%", guide = "lower", hi = 0, dir = "down" },
    { label = "low-class mean e2e, priority vs FCFS", value = pct(P.lo_e2e_ms, F.lo_e2e_ms), unit = "%", guide = "higher", lo = 0, dir = "up" },
  },
  table_md = twinfer.table(rows, cols),
  figure = { kind = "bars", x = "policy", y = { "mean_e2e_ms", "p99_e2e_ms", "long_queue_ms" }, xlabel = "policy", ylabel = "ms" },
  notes = { "Workloads carry no priorities; the classes are assigned by request id in a Lua queue policy. The guide's priority claims assume real client priorities." },
}, rows, cols)
