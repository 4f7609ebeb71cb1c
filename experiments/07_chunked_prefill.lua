-- Claim 7 (issue #7): chunked prefill lowers TTFT and ITL with long prompts, and brings no gain
-- in offline throughput. Long prompts under Poisson load, and the same requests offline.
--
--   twinfer exp experiments/07_chunked_prefill.lua --backend sim --out experiments/results/sim/07_chunked_prefill [n=1] [rates=2,4,6]
-- (verdict at the highest rate)
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local shape = { max_model_len = 8192, input_len = "lognormal:3000:0.5", output_len = "lognormal:200:0.6",
  num_requests = count(1000), max_requests = count(1000) }
local function with(t) local c = cfg(shape) for k, v in pairs(t) do c[k] = v end return c end
local rates = E.list("rates", { 2, 4, 6 })
table.sort(rates)
local runs = {}
for _, rate in ipairs(rates) do
  runs[#runs + 1] = with({ name = "rate=" .. rate .. ",chunked=false", arrival = "poisson", rate = rate })
  runs[#runs + 1] = with({ name = "rate=" .. rate .. ",chunked=true", arrival = "poisson", rate = rate, enable_chunked_prefill = true })
end
runs[#runs + 1] = with({ name = "offline,chunked=false", arrival = "offline" })
runs[#runs + 1] = with({ name = "offline,chunked=true", arrival = "offline", enable_chunked_prefill = true })
local res = twinfer.run_all(runs)
local rows = {}
for i, rate in ipairs(rates) do
  local off, on = res[2 * i - 1], res[2 * i]
  rows[i] = { rate = rate, ttft_off_ms = off.ttft_ms.mean, ttft_on_ms = on.ttft_ms.mean,
    itl_p99_off_ms = off.itl_ms.p99, itl_p99_on_ms = on.itl_ms.p99,
    ttft_change_pct = pct(on.ttft_ms.mean, off.ttft_ms.mean), itl_p99_change_pct = pct(on.itl_ms.p99, off.itl_ms.p99) }
end
local mid = rows[#rows]
local o1, o2 = res[#res - 1], res[#res]
local cols = { "rate", "ttft_off_ms", "ttft_on_ms", "ttft_change_pct", "itl_p99_off_ms", "itl_p99_on_ms", "itl_p99_change_pct" }
finish({
  id = "07", slug = "chunked_prefill", title = "Chunked prefill with long prompts",
  claim = "--enable-chunked-prefill lowers TTFT and ITL when prompts are long, and gives no gain in offline throughput.",
  setup = count(1000) .. " requests with long prompts (lognormal median 3000 tokens, output median 200) at Poisson " .. table.concat(rates, "/") .. " req/s and offline; chunked prefill off (budget = max-model-len 8192) vs on (vLLM default budget 2048). Verdict metrics at the highest rate.",
  metrics = {
    { label = "mean TTFT change, chunked vs not (" .. mid.rate .. " req/s)", value = mid.ttft_change_pct, unit = "%", guide = "lower", hi = 0, dir = "down" },
    { label = "P99 ITL change, chunked vs not (" .. mid.rate .. " req/s)", value = mid.itl_p99_change_pct, unit = "%", guide = "lower", hi = 0, dir = "down" },
    { label = "offline throughput change, chunked vs not", value = pct(o2.output_tok_per_s, o1.output_tok_per_s), unit = "%", guide = "no gain (within +-5%)", lo = -5, hi = 5 },
  },
  table_md = twinfer.table(rows, cols) .. "\nOffline output tok/s: " .. twinfer.format(o1.output_tok_per_s) .. " without, " .. twinfer.format(o2.output_tok_per_s) .. " with chunked prefill.\n",
  figure = { x = "rate", y = { "ttft_change_pct", "itl_p99_change_pct" }, xlabel = "arrival rate (req/s)", ylabel = "change with chunked prefill (%)" },
  notes = {},
}, rows, cols)
