-- Claim 11 (issue #7): KV-cache size of Llama-2-70B. The guide: 4 KB per token and 16 MB for
-- 4096 tokens (per layer). Computes the whole-model figure from the model spec and measures it:
-- the memory plan's bytes per token, and the blocks one 4096-token request actually holds.
--
--   twinfer exp experiments/11_kv_size_llama2_70b.lua --backend sim --out experiments/results/sim/11_kv_size_llama2_70b
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local M70 = A.model70 or "llama-2-70b"
local TP = tonumber(A.tp or 4)  -- 140 GB of bf16 weights need at least 2 H100s; 4 leave room for KV
local run = twinfer.run(cfg({ model = M70, tensor_parallel_size = TP, arrival = "offline",
  num_requests = 1, max_requests = 1, input_len = "fixed:4095", output_len = "fixed:1", max_model_len = 4096 }))
local m, mem = run.model, run.memory
local per_token_model = mem.kv_bytes_per_token * TP              -- all GPUs together
local per_layer_token = per_token_model / m.num_layers
local held_bytes = run.kv_blocks_peak * mem.block_bytes * TP     -- what the 4096-token request held
local mha = 2 * m.hidden_size * m.num_layers * 2                 -- if K and V were hidden-wide
local rows = {
  { quantity = "KV bytes per token per layer", value = per_layer_token, unit = "B" },
  { quantity = "KV per layer, 4096 tokens", value = per_layer_token * 4096 / 2 ^ 20, unit = "MiB" },
  { quantity = "KV per token, whole model", value = per_token_model / 2 ^ 10, unit = "KiB" },
  { quantity = "KV for 4096 tokens, whole model (computed)", value = per_token_model * 4096 / 2 ^ 30, unit = "GiB" },
  { quantity = "KV held by one 4096-token request (measured)", value = held_bytes / 2 ^ 30, unit = "GiB" },
  { quantity = "same without GQA (64 KV heads)", value = mha * 4096 / 2 ^ 30, unit = "GiB" },
}
finish({
  id = "11", slug = "kv_size_llama2_70b", title = "KV-cache size of Llama-2-70B",
  claim = "Llama-2-70B's KV cache takes 4 KB per token and 16 MB for 4096 tokens (per layer).",
  setup = M70 .. " (" .. m.num_layers .. " layers, " .. m.num_kv_heads .. " KV heads of " .. m.head_dim .. ", bf16) at --tensor-parallel-size " .. TP .. "; one request of 4095+1 tokens, block size " .. mem.block_size .. ".",
  metrics = {
    { label = "KV bytes per token per layer", value = per_layer_token / 1024, unit = "KiB", guide = "4 KB", lo = 3.9, hi = 4.1 },
    { label = "KV per layer for 4096 tokens", value = per_layer_token * 4096 / 2 ^ 20, unit = "MiB", guide = "16 MB", lo = 15.5, hi = 16.5 },
    { label = "measured / computed whole-model KV for 4096 tokens", value = held_bytes / (per_token_model * 4096), unit = "x", guide = "1x (the plan holds what the arithmetic says)", lo = 0.98, hi = 1.02 },
    { label = "whole-model KV for 4096 tokens", value = per_token_model * 4096 / 2 ^ 30, unit = "GiB", guide = "(not stated; 80 layers x 16 MiB)", info = true },
  },
  table_md = twinfer.table(rows, { "quantity", "value", "unit" }),
  figure = { kind = "bars", x = "quantity", y = { "value" }, xlabel = "", ylabel = "GiB" },
  notes = { "The guide's per-layer figure is right only because Llama-2-70B uses GQA (8 KV heads): 2 x 8 x 128 x 2 bytes = 4 KiB. Without GQA the same model would need 8x as much." },
}, { rows[4], rows[5], rows[6] }, { "quantity", "value", "unit" })
