-- Claim 13 (issue #7): paged KV vs contiguous pre-allocation: waste of 60-80% falls under 4%.
-- The engine is paged only; contiguous waste is computed from the run's own requests: a
-- contiguous server reserves max-model-len slots per request (the vLLM paper's baseline), and
-- uses prompt+output of them. Paged waste: the unused tail of each request's last block.
--
--   twinfer exp experiments/13_paged_vs_contiguous.lua --backend sim --out experiments/results/sim/13_paged_vs_contiguous [n=1]
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local lens = { 2048, 4096, 8192 }            -- contiguous reservations compared
local runs = E.list("lens", lens)            -- max-model-len of the paged runs (a subset on hardware)
table.sort(runs)
local res = twinfer.sweep(cfg({
  arrival = "poisson", rate = 20, num_requests = count(1500), max_requests = count(1500),
  input_len = "lognormal:220:0.9", output_len = "lognormal:180:0.8", per_request = true, per_step = true,
}), { max_model_len = runs })
local by_len = {}
for i, r in ipairs(res) do by_len[runs[i]] = r end
local rows = {}
for i, L in ipairs(lens) do
  -- The run at this max-model-len, or (hardware subset) the first run: lengths do not depend on
  -- the reservation as long as they fit it, and the capacity is that run's measured pool.
  local r = by_len[L] or res[1]
  local q, bs, used, paged, n = r.per_request, r.memory.block_size, 0, 0, 0
  for j = 1, #q.id do
    local len = q.prompt_len[j] + q.output_len[j]
    if q.finished[j] and len <= L then
      used, paged, n = used + len, paged + math.ceil(len / bs) * bs, n + 1
    end
  end
  local contiguous = n * L
  -- Concurrency the pool allows: contiguous slots vs what the paged run actually held at once.
  local peak_running = 0
  for _, x in ipairs(r.per_step.running) do peak_running = math.max(peak_running, x) end
  rows[i] = { max_model_len = L, paged_run = r.config.max_model_len, contiguous_waste_pct = (1 - used / contiguous) * 100,
    paged_waste_pct = (1 - used / paged) * 100, capacity_tokens = r.memory.capacity_tokens,
    contiguous_slots = r.memory.capacity_tokens // L, paged_peak_running = peak_running }
end
local cols = { "max_model_len", "paged_run", "contiguous_waste_pct", "paged_waste_pct", "capacity_tokens", "contiguous_slots", "paged_peak_running" }
finish({
  id = "13", slug = "paged_vs_contiguous", title = "Paged vs contiguous KV pre-allocation",
  claim = "Contiguous pre-allocation wastes 60-80% of KV memory; paged attention brings the waste under 4%.",
  setup = count(1500) .. " ShareGPT-like requests (input lognormal median 220, output median 180) at Poisson 20 req/s, block size 16; contiguous reservation = --max-model-len per request (2048/4096/8192). Waste = 1 - tokens used / tokens reserved, at each request's final length. Verdict at max-model-len 2048 (the vLLM paper's setting). Paged runs at max-model-len " .. table.concat(runs, "/") .. " (column paged_run: the run whose lengths and KV capacity a row uses)."
    .. (E.ON_HW and " On hardware capacity_tokens is the engine's measured pool (printed at start-up)." or ""),
  metrics = {
    { label = "contiguous waste (max-model-len 2048)", value = rows[1].contiguous_waste_pct, unit = "%", guide = "60-80%", lo = 60, hi = 80 },
    { label = "paged waste (block 16)", value = rows[1].paged_waste_pct, unit = "%", guide = "< 4%", hi = 4 },
    { label = "contiguous waste at max-model-len 8192", value = rows[3].contiguous_waste_pct, unit = "%", guide = "(grows with max-model-len)", info = true },
  },
  table_md = twinfer.table(rows, cols),
  figure = { kind = "bars", x = "max_model_len", y = { "contiguous_waste_pct", "paged_waste_pct" }, xlabel = "--max-model-len", ylabel = "KV waste (%)" },
  notes = { "twinfer has no contiguous allocator: the contiguous figures are arithmetic over the paged run's requests (final lengths), not a second simulation. Paged waste is each request's last-block tail at its final length; during generation the tail varies between 0 and block_size - 1 tokens, so the time average is of the same size." },
}, rows, cols)
