-- Claim 5 (issue #7): --max-num-seqs 64 -> 96-128 gives +10-20% throughput and a higher P95
-- latency. Saturated offline batch of ShareGPT-like requests.
--
--   twinfer exp experiments/05_max_num_seqs.lua --backend sim --out experiments/results/sim/05_max_num_seqs [n=1]
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local seqs = { 32, 64, 96, 128, 256 }
local res = twinfer.sweep(cfg({
  arrival = "offline", num_requests = count(2000), max_requests = count(2000),
  input_len = "lognormal:220:0.9", output_len = "lognormal:180:0.8",
}), { max_num_seqs = seqs })
local rows, at = {}, {}
for i, r in ipairs(res) do
  rows[i] = { max_num_seqs = seqs[i], tok_s = r.output_tok_per_s, tpot_p95_ms = r.tpot_ms.p95,
    itl_p95_ms = r.itl_ms.p95, e2e_p95_ms = r.e2e_ms.p95, preemptions = r.preemptions }
  at[seqs[i]] = rows[i]
end
local cols = { "max_num_seqs", "tok_s", "tpot_p95_ms", "itl_p95_ms", "e2e_p95_ms", "preemptions" }
finish({
  id = "05", slug = "max_num_seqs", title = "--max-num-seqs 64 -> 96-128",
  claim = "Raising --max-num-seqs from 64 to 96-128 raises throughput by 10-20% while P95 latency goes up.",
  setup = "Offline batch of " .. count(2000) .. " ShareGPT-like requests (input lognormal median 220, output median 180); --max-num-seqs 32/64/96/128/256. P95 latency = P95 time per output token (the batch's per-token latency).",
  metrics = {
    { label = "throughput gain 64 -> 96", value = pct(at[96].tok_s, at[64].tok_s), unit = "%", guide = "+10-20%", lo = 10, hi = 20, dir = "up" },
    { label = "throughput gain 64 -> 128", value = pct(at[128].tok_s, at[64].tok_s), unit = "%", guide = "+10-20%", lo = 10, hi = 20, dir = "up" },
    { label = "P95 TPOT change 64 -> 128", value = pct(at[128].tpot_p95_ms, at[64].tpot_p95_ms), unit = "%", guide = "higher", lo = 0, dir = "up" },
  },
  table_md = twinfer.table(rows, cols),
  figure = { x = "max_num_seqs", y = { "tok_s" }, y2 = { "tpot_p95_ms" }, xlabel = "--max-num-seqs", ylabel = "output tok/s", y2label = "P95 TPOT (ms)", logx = true },
  notes = {},
}, rows, cols)
