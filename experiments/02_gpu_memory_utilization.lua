-- Claim 2 (issue #7): raising --gpu-memory-utilization from 0.80 to 0.95 buys KV-cache
-- capacity, concurrency and throughput, at the price of OOM risk (less headroom).
-- Memory-bound offline batch: long prompts so the KV pool, not --max-num-seqs, limits the batch.
-- On hardware the KV capacity is the CUDA backend's measured plan (weights and the profiled
-- step subtracted from the GPU's real memory), and a run that cannot start (OOM) is reported.
--
--   twinfer exp experiments/02_gpu_memory_utilization.lua --backend sim --out experiments/results/sim/02_gpu_memory_utilization [n=1] [utils=0.8,0.95]
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local utils = E.list("utils", { 0.80, 0.85, 0.90, 0.95 })
local base = cfg({
  arrival = "offline", num_requests = count(1500), max_requests = count(1500),
  input_len = "lognormal:1500:0.6", output_len = "lognormal:400:0.6", max_num_seqs = 1024,
  max_model_len = 8192, per_step = true,
})
local res = E.run_each(twinfer.points(base, { gpu_memory_utilization = utils }))
local rows, failed = {}, {}
for i, r in ipairs(res) do
  if r.run_failed then
    rows[i] = { util = utils[i], ran = "failed" }
    failed[#failed + 1] = utils[i] .. ": " .. r.error
  else
    -- Concurrency: time-weighted mean of running sequences over the steps.
    local st, w, t = r.per_step, 0, 0
    for j = 1, #st.duration_s do w = w + st.running[j] * st.duration_s[j]; t = t + st.duration_s[j] end
    local mem = r.memory
    rows[i] = {
      util = utils[i], ran = "yes", kv_gib = mem.kv_bytes / 2 ^ 30, capacity_tokens = mem.capacity_tokens,
      mean_running = w / t, tok_s = r.output_tok_per_s, preemptions = r.preemptions,
      headroom_gib = (mem.memory_bytes - mem.budget_bytes) / 2 ^ 30,
    }
  end
end
local lo, hi = rows[1], rows[#rows]
local both = lo.ran == "yes" and hi.ran == "yes"
local why = "the run at " .. (lo.ran == "yes" and hi.util or lo.util) .. " failed"
local cols = { "util", "ran", "kv_gib", "capacity_tokens", "mean_running", "tok_s", "preemptions", "headroom_gib" }
local notes = { "OOM is not simulated: the simulator never exceeds its plan. The OOM risk is reported as the memory left outside the budget (utilization x memory); on hardware it is what the allocator, NCCL and fragmentation have to live in." }
if E.ON_HW then
  notes = { "On hardware the KV pool is sized from the GPU's real memory: utilization x total minus the weights and the reserve measured by a profiling step of --max-num-batched-tokens tokens (app/backend_cuda.cpp), so capacity_tokens is the engine's real capacity. A utilization the device cannot hold fails at start-up; column ran says whether each setting ran, and the OOM row counts the failures.",
    "twinfer's pool is planned from measured memory, so a setting fails only if the graphs, cuBLAS workspaces or fragmentation outgrow the headroom left outside the budget (headroom_gib); vLLM's OOM risk at 0.95 has the same source." }
  for _, f in ipairs(failed) do notes[#notes + 1] = "Failed run: " .. f end
end
finish({
  id = "02", slug = "gpu_memory_utilization", title = "--gpu-memory-utilization 0.80 -> 0.95",
  claim = "Raising --gpu-memory-utilization from 0.80 to 0.95 increases KV-cache capacity, concurrency and throughput, at the cost of a higher OOM risk.",
  setup = "Offline batch of " .. count(1500) .. " long requests (input lognormal median 1500, output lognormal median 400), --max-num-seqs 1024, --max-model-len 8192; utilization " .. table.concat(utils, "/") .. ". Concurrency = time-weighted mean running sequences.",
  metrics = {
    E.metric_if(both, { label = "KV capacity gain " .. lo.util .. " -> " .. hi.util, value = both and pct(hi.capacity_tokens, lo.capacity_tokens), unit = "%", guide = "more capacity", lo = 0, dir = "up" }, why),
    E.metric_if(both, { label = "mean concurrency gain " .. lo.util .. " -> " .. hi.util, value = both and pct(hi.mean_running, lo.mean_running), unit = "%", guide = "more concurrency", lo = 0, dir = "up" }, why),
    E.metric_if(both, { label = "throughput gain " .. lo.util .. " -> " .. hi.util, value = both and pct(hi.tok_s, lo.tok_s), unit = "%", guide = "more throughput", lo = 0, dir = "up" }, why),
    { label = "headroom outside the budget at " .. hi.util, value = hi.headroom_gib, unit = "GiB", guide = "OOM risk", info = true },
    { label = "runs that failed to start (OOM) of " .. #rows, value = #failed, unit = "runs", guide = "OOM risk", info = true },
  },
  table_md = twinfer.table(rows, cols),
  figure = { x = "util", y = { "capacity_tokens" }, y2 = { "tok_s" }, xlabel = "--gpu-memory-utilization", ylabel = "KV capacity (tokens)", y2label = "output tok/s" },
  notes = notes,
}, rows, cols)
