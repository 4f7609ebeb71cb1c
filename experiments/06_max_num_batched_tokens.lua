-- Claim 6 (issue #7): --max-num-batched-tokens trades TTFT against ITL: 131072 -> 262144 for
-- throughput, small budgets (with chunked prefill) for smooth decoding.
-- Part A: large budgets without chunked prefill, offline long prompts (the budget caps the
-- prefill burst). Part B: chunked prefill with 512..16384-token budgets under Poisson load.
--
--   twinfer exp experiments/06_max_num_batched_tokens.lua --backend sim --out experiments/results/sim/06_max_num_batched_tokens [n=1]
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local big = { 16384, 131072, 262144 }
local a = twinfer.sweep(cfg({
  arrival = "offline", num_requests = count(1500), max_requests = count(1500), max_model_len = 8192,
  input_len = "lognormal:1500:0.6", output_len = "lognormal:200:0.6", max_num_seqs = 512,
}), { max_num_batched_tokens = big })
local small = { 512, 1024, 2048, 4096, 8192, 16384 }
local b = twinfer.sweep(cfg({
  arrival = "poisson", rate = 12, num_requests = count(1200), max_requests = count(1200),
  max_model_len = 8192, enable_chunked_prefill = true,
  input_len = "lognormal:1500:0.6", output_len = "lognormal:200:0.6",
}), { max_num_batched_tokens = small })
local rows = {}
for i, r in ipairs(b) do
  rows[i] = { budget = small[i], ttft_mean_ms = r.ttft_ms.mean, ttft_p99_ms = r.ttft_ms.p99,
    itl_p50_ms = r.itl_ms.p50, itl_p99_ms = r.itl_ms.p99, tok_s = r.output_tok_per_s }
end
local arows = {}
for i, r in ipairs(a) do
  arows[i] = { budget = big[i], tok_s = r.output_tok_per_s, ttft_mean_ms = r.ttft_ms.mean, itl_p99_ms = r.itl_ms.p99 }
end
local cols = { "budget", "ttft_mean_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tok_s" }
finish({
  id = "06", slug = "max_num_batched_tokens", title = "--max-num-batched-tokens: TTFT vs ITL",
  claim = "Raising --max-num-batched-tokens from 131072 to 262144 raises throughput; small budgets lower inter-token latency at the cost of time to first token.",
  setup = "A: offline batch of " .. count(1500) .. " requests (input lognormal median 1500, output median 200), --max-num-seqs 512, no chunked prefill, budgets 16384/131072/262144. B: the same request shape at Poisson 12 req/s with --enable-chunked-prefill, budgets 512..16384.",
  metrics = {
    { label = "offline throughput 131072 -> 262144", value = pct(a[3].output_tok_per_s, a[2].output_tok_per_s), unit = "%", guide = "higher", lo = 0, dir = "up" },
    { label = "P99 ITL, budget 512 vs 16384", value = pct(rows[1].itl_p99_ms, rows[#rows].itl_p99_ms), unit = "%", guide = "lower ITL with a small budget", hi = 0, dir = "down" },
    { label = "mean TTFT, budget 512 vs 16384", value = pct(rows[1].ttft_mean_ms, rows[#rows].ttft_mean_ms), unit = "%", guide = "higher TTFT with a small budget", lo = 0, dir = "up" },
  },
  table_md = "Part A (offline, no chunked prefill):\n\n" .. twinfer.table(arows, { "budget", "tok_s", "ttft_mean_ms", "itl_p99_ms" })
    .. "\nPart B (Poisson 12 req/s, chunked prefill):\n\n" .. twinfer.table(rows, cols),
  figure = { x = "budget", y = { "ttft_mean_ms" }, y2 = { "itl_p99_ms" }, xlabel = "--max-num-batched-tokens (chunked prefill)", ylabel = "mean TTFT (ms)", y2label = "P99 ITL (ms)", logx = true },
  notes = {},
}, rows, cols)
