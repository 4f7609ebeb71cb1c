#include "core/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace twinfer {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// CUDA context, cuBLAS workspaces and CUDA-graph pools: what vLLM's profiling run sees as
// non-torch memory on an H100 is about this size.
constexpr double kRuntimeBytes = 0.75 * kGiB;

std::string gib(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", b / kGiB);
  return buf;
}
}  // namespace

DType resolve_kv_dtype(const std::string& s, DType weight_dtype) {
  if (s == "auto") return weight_dtype == DType::f32 ? DType::f32 : weight_dtype;
  if (s == "fp8") return DType::fp8_e4m3;
  if (s == "fp16") return DType::f16;
  return DType::bf16;
}

double estimate_activation_bytes(const ModelSpec& m, int64_t tokens, int64_t max_seqs, int tp) {
  // Largest live tensors of one layer at a time (residual, normed input, QKV, attention out,
  // gate+up and the activated product), in 16-bit, plus fp32 logits of the sampled rows.
  const double per_token = 2.0 * (3.0 * static_cast<double>(m.hidden_size) +
                                  static_cast<double>(m.q_dim() + 2 * m.kv_dim()) / tp +
                                  3.0 * static_cast<double>(m.intermediate_size) / tp);
  const double logits = 4.0 * 2.0 * static_cast<double>(std::min(tokens, max_seqs)) *
                        static_cast<double>(m.vocab_size) / tp;
  return per_token * static_cast<double>(tokens) + logits;
}

MemoryPlan plan_memory(const ModelSpec& m, double memory_bytes, const RunConfig& c,
                       double measured_reserve) {
  const EngineConfig& e = c.engine;
  MemoryPlan p;
  const int tp = e.tensor_parallel_size;
  auto wdt = parse_dtype(c.dtype).value_or(m.dtype);
  p.kv_dtype = resolve_kv_dtype(e.kv_cache_dtype, wdt);
  p.block_size = e.block_size;
  p.max_model_len = e.max_model_len > 0 ? e.max_model_len : static_cast<int32_t>(m.max_position_embeddings);
  if (m.max_position_embeddings > 0 && e.max_model_len > m.max_position_embeddings)
    throw ConfigError("--max-model-len " + std::to_string(e.max_model_len) +
                          " exceeds the model's context length " +
                          std::to_string(m.max_position_embeddings),
                      2);
  p.max_num_batched_tokens = c.effective_max_num_batched_tokens(p.max_model_len);
  if (!e.enable_chunked_prefill && e.batching != "static" &&
      p.max_num_batched_tokens < p.max_model_len)
    throw ConfigError("--max-num-batched-tokens " + std::to_string(p.max_num_batched_tokens) +
                          " is smaller than --max-model-len " + std::to_string(p.max_model_len) +
                          ": without --enable-chunked-prefill a whole prompt must fit one step "
                          "(raise the budget, lower max-model-len, or enable chunked prefill)",
                      2);
  p.memory_bytes = memory_bytes;
  p.budget_bytes = e.gpu_memory_utilization * memory_bytes;
  p.weight_bytes = m.weight_bytes(wdt) / tp;
  if (measured_reserve >= 0) {
    p.activation_bytes = measured_reserve;
    p.runtime_bytes = 0;
  } else if (e.activation_reserve >= 0) {
    p.activation_bytes = e.activation_reserve * kGiB;
    p.runtime_bytes = 0;
  } else {
    p.activation_bytes = estimate_activation_bytes(m, p.max_num_batched_tokens, e.max_num_seqs, tp);
    p.runtime_bytes = kRuntimeBytes;
  }
  p.kv_bytes_per_token = m.kv_bytes_per_token(p.kv_dtype) / tp;
  p.block_bytes = p.kv_bytes_per_token * e.block_size;
  p.kv_bytes = p.budget_bytes - p.weight_bytes - p.activation_bytes - p.runtime_bytes;
  if (e.num_gpu_blocks_override > 0) {
    p.num_gpu_blocks = e.num_gpu_blocks_override;
  } else {
    if (p.kv_bytes < p.block_bytes)
      throw ConfigError("model " + m.name + " does not fit: weights " + gib(p.weight_bytes) +
                        " + activations " + gib(p.activation_bytes) + " + runtime " +
                        gib(p.runtime_bytes) + " exceed gpu-memory-utilization " +
                        std::to_string(e.gpu_memory_utilization).substr(0, 4) + " x " +
                        gib(memory_bytes) + " = " + gib(p.budget_bytes) +
                        " (raise --gpu-memory-utilization, use more --tensor-parallel-size, or "
                        "pick a larger GPU)");
    p.num_gpu_blocks = static_cast<int32_t>(std::min(
        std::floor(p.kv_bytes / p.block_bytes), 2.0e9));
  }
  p.capacity_tokens = static_cast<int64_t>(p.num_gpu_blocks) * e.block_size;
  p.num_cpu_blocks = static_cast<int32_t>(std::min(std::floor(e.swap_space * kGiB / p.block_bytes), 2.0e9));
  if (p.capacity_tokens < p.max_model_len)
    throw ConfigError("--max-model-len " + std::to_string(p.max_model_len) +
                          " is beyond the KV pool: " + std::to_string(p.num_gpu_blocks) +
                          " blocks x " + std::to_string(e.block_size) + " = " +
                          std::to_string(p.capacity_tokens) +
                          " tokens (lower --max-model-len or raise --gpu-memory-utilization)",
                      1);
  return p;
}

Json MemoryPlan::to_json() const {
  Json j = Json::object();
  j["memory_bytes"] = memory_bytes;
  j["budget_bytes"] = budget_bytes;
  j["weight_bytes"] = weight_bytes;
  j["activation_bytes"] = activation_bytes;
  j["runtime_bytes"] = runtime_bytes;
  j["kv_bytes"] = kv_bytes;
  j["kv_bytes_per_token"] = kv_bytes_per_token;
  j["block_bytes"] = block_bytes;
  j["block_size"] = block_size;
  j["num_gpu_blocks"] = num_gpu_blocks;
  j["num_cpu_blocks"] = num_cpu_blocks;
  j["capacity_tokens"] = capacity_tokens;
  j["max_model_len"] = max_model_len;
  j["max_num_batched_tokens"] = max_num_batched_tokens;
  j["kv_cache_dtype"] = std::string(dtype_name(kv_dtype));
  return j;
}

std::string MemoryPlan::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "KV cache: %d blocks x %d tokens = %lld tokens (%s of %s; weights %s, "
                "activations+runtime %s)",
                num_gpu_blocks, block_size, static_cast<long long>(capacity_tokens),
                gib(kv_bytes).c_str(), gib(memory_bytes).c_str(), gib(weight_bytes).c_str(),
                gib(activation_bytes + runtime_bytes).c_str());
  return buf;
}

}  // namespace twinfer
