-- Claim 11 (issue #7): KV-cache size of Llama-2-70B. The guide: 4 KB per token and 16 MB for
-- 4096 tokens (per layer). Computes the whole-model figure from the model spec and measures it:
-- the memory plan's bytes per token, and the blocks one 4096-token request actually holds.
-- The 140 GB of bf16 weights do not fit one 80 GB GPU, so on hardware (or with layers70=N) the
-- run uses a model of Llama-2-70B's exact width (hidden 8192, 64 query / 8 KV heads of 128,
-- MLP 28672, vocab 32000) with N of its 80 layers, written as a HF config.json into the output
-- folder; KV bytes are per layer, so the whole-model figures are the measured ones x 80 / N.
--
--   twinfer exp experiments/11_kv_size_llama2_70b.lua --backend sim --out experiments/results/sim/11_kv_size_llama2_70b
--       [tp=4] [layers70=8] (layers70: the reduced-depth run; the default on a hardware backend)
local E = twinfer.include("../scripts/lua/experiment_common.lua")
local A, MODEL, HW, SCALE = E.A, E.MODEL, E.HW, E.SCALE
local cfg, count, pct, sum, finish = E.cfg, E.count, E.pct, E.sum, E.finish

local FULL_LAYERS = 80
local LAYERS = tonumber(A.layers70 or (E.ON_HW and 8 or FULL_LAYERS))
local M70, TP = A.model70 or "llama-2-70b", tonumber(A.tp or 4)  -- 4 H100s hold 140 GB of weights with room for KV
if LAYERS ~= FULL_LAYERS then
  -- meta-llama/Llama-2-70b-hf's config.json with num_hidden_layers cut to LAYERS.
  M70 = twinfer.write_json("llama-2-70b-" .. LAYERS .. "layers.json", {
    model_type = "llama", architectures = { "LlamaForCausalLM" }, vocab_size = 32000, hidden_size = 8192,
    intermediate_size = 28672, num_hidden_layers = LAYERS, num_attention_heads = 64, num_key_value_heads = 8,
    max_position_embeddings = 4096, rms_norm_eps = 1e-5, rope_theta = 10000.0, hidden_act = "silu",
    bos_token_id = 1, eos_token_id = 2, torch_dtype = "float16", tie_word_embeddings = false })
  TP = 1
end
local run = twinfer.run(cfg({ model = M70, tensor_parallel_size = TP, arrival = "offline",
  num_requests = 1, max_requests = 1, input_len = "fixed:4095", output_len = "fixed:1", max_model_len = 4096 }))
local m, mem = run.model, run.memory
assert(m.hidden_size == 8192 and m.num_kv_heads == 8 and m.head_dim == 128,
  "model70 must have Llama-2-70B's width (hidden 8192, 8 KV heads of 128)")
local depth = FULL_LAYERS / m.num_layers                          -- 1 for the full model
local per_token_model = mem.kv_bytes_per_token * TP * depth       -- all GPUs, all 80 layers
local per_layer_token = per_token_model / FULL_LAYERS
-- What the 4096-token request held: blocks x the engine's block bytes, scaled to 80 layers.
local held_bytes = run.kv_blocks_peak * mem.block_bytes * TP * depth
local mha = 2 * m.hidden_size * FULL_LAYERS * 2                   -- if K and V were hidden-wide
local rows = {
  { quantity = "KV bytes per token per layer", value = per_layer_token, unit = "B" },
  { quantity = "KV per layer, 4096 tokens", value = per_layer_token * 4096 / 2 ^ 20, unit = "MiB" },
  { quantity = "KV per token, whole model", value = per_token_model / 2 ^ 10, unit = "KiB" },
  { quantity = "KV for 4096 tokens, whole model (computed)", value = per_token_model * 4096 / 2 ^ 30, unit = "GiB" },
  { quantity = "KV held by one 4096-token request (measured)", value = held_bytes / 2 ^ 30, unit = "GiB" },
  { quantity = "same without GQA (64 KV heads)", value = mha * 4096 / 2 ^ 30, unit = "GiB" },
}
local how = LAYERS == FULL_LAYERS
  and "llama-2-70b (80 layers, 8 KV heads of 128, bf16) at --tensor-parallel-size " .. TP
  or "a model of Llama-2-70B's width with " .. m.num_layers .. " of its 80 layers (8 KV heads of 128, bf16, random weights), one GPU; per-layer figures measured, whole-model figures x 80/" .. m.num_layers
local notes = { "The guide's per-layer figure is right only because Llama-2-70B uses GQA (8 KV heads): 2 x 8 x 128 x 2 bytes = 4 KiB. Without GQA the same model would need 8x as much." }
if LAYERS ~= FULL_LAYERS then
  notes[#notes + 1] = "Llama-2-70B's 80 layers (about 138 GB of bf16 weights) do not fit one 80 GB GPU and the CUDA backend runs on one GPU, so the hardware run keeps the model's width and cuts its depth; KV-cache bytes are the same in every layer, so the whole-model figures are exact multiples. The engine allocated its KV pool of " .. mem.num_gpu_blocks .. " blocks of " .. mem.block_bytes .. " bytes (" .. twinfer.format(mem.kv_bytes / 2 ^ 30) .. " GiB, capacity " .. mem.capacity_tokens .. " tokens) on the device; the request held " .. run.kv_blocks_peak .. " of them."
end
finish({
  id = "11", slug = "kv_size_llama2_70b", title = "KV-cache size of Llama-2-70B",
  model = LAYERS == FULL_LAYERS and M70 or "llama-2-70b width, " .. m.num_layers .. " layers",
  claim = "Llama-2-70B's KV cache takes 4 KB per token and 16 MB for 4096 tokens (per layer).",
  setup = how .. "; one request of 4095+1 tokens, block size " .. mem.block_size .. ".",
  metrics = {
    { label = "KV bytes per token per layer", value = per_layer_token / 1024, unit = "KiB", guide = "4 KB", lo = 3.9, hi = 4.1 },
    { label = "KV per layer for 4096 tokens", value = per_layer_token * 4096 / 2 ^ 20, unit = "MiB", guide = "16 MB", lo = 15.5, hi = 16.5 },
    { label = "measured / computed whole-model KV for 4096 tokens", value = held_bytes / (per_token_model * 4096), unit = "x", guide = "1x (the plan holds what the arithmetic says)", lo = 0.98, hi = 1.02 },
    { label = "whole-model KV for 4096 tokens", value = per_token_model * 4096 / 2 ^ 30, unit = "GiB", guide = "(not stated; 80 layers x 16 MiB)", info = true },
  },
  table_md = twinfer.table(rows, { "quantity", "value", "unit" }),
  figure = { kind = "bars", x = "quantity", y = { "value" }, xlabel = "", ylabel = "GiB" },
  notes = notes,
}, { rows[4], rows[5], rows[6] }, { "quantity", "value", "unit" })
