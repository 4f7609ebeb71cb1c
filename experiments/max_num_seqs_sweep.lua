-- How --max-num-seqs trades throughput against latency on the Azure LLM conversation trace
-- (2023): the same trace with 32..256 sequences per step. At its own timestamps (~5.5 req/s)
-- the trace never fills 32 slots on one H100, so every setting looks the same; replayed 4x
-- faster (time_scale 0.25, ~22 req/s) it arrives at about the engine's capacity, where the
-- batch limit decides between per-token latency (TPOT) and queueing (TTFT).
--
--   twinfer exp experiments/max_num_seqs_sweep.lua [--backend sim] [--out DIR]
--       [workload=PATH] [model=NAME] [hardware=NAME] [max_requests=N] [time_scale=X]
--
-- Writes max_num_seqs.md, max_num_seqs.csv and results.json into the output folder.
local base = {
  workload = args.workload or "../shared/data/traces/azure_llm_2023_conv.csv",
  model = args.model or "llama-3-8b",
  hardware = args.hardware or "h100-sxm",
  max_requests = args.max_requests or 0,
  time_scale = args.time_scale or 0.25,
}

local results = twinfer.sweep(base, { max_num_seqs = { 32, 64, 128, 256 } })

local columns = {
  { "max-num-seqs", "config.max_num_seqs" },
  { "req/s", "req_per_s" },
  { "output tok/s", "output_tok_per_s" },
  { "TTFT p50 (ms)", "ttft_ms.p50" },
  { "TTFT p99 (ms)", "ttft_ms.p99" },
  { "TPOT p50 (ms)", "tpot_ms.p50" },
  { "e2e p99 (ms)", "e2e_ms.p99" },
  { "preemptions", "preemptions" },
  { "KV peak (blocks)", "kv_blocks_peak" },
}

local md = "# --max-num-seqs on " .. base.workload .. "\n\n"
  .. "model " .. base.model .. ", hardware " .. base.hardware .. ", backend "
  .. results[1].backend .. "\n\n" .. twinfer.table(results, columns)
twinfer.write("max_num_seqs.md", md)
twinfer.write_csv("max_num_seqs.csv", results, columns)
print(md)
