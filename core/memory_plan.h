// How GPU memory is split: weights, activation reserve, runtime overhead and the KV pool.
// vLLM's rule: the pool gets gpu_memory_utilization x memory minus everything else.
#pragma once
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/json.h"
#include "core/model_spec.h"

namespace twinfer {

struct MemoryPlan {
  double memory_bytes = 0;      // per GPU
  double budget_bytes = 0;      // utilization x memory
  double weight_bytes = 0;      // per GPU (weights / tp)
  double activation_bytes = 0;  // peak activations of the largest step
  double runtime_bytes = 0;     // CUDA context, library workspaces, graph pools
  double kv_bytes = 0;          // what is left for the pool
  double kv_bytes_per_token = 0;  // per GPU
  double block_bytes = 0;
  int32_t block_size = 16;
  int32_t num_gpu_blocks = 0;
  int32_t num_cpu_blocks = 0;
  int64_t capacity_tokens = 0;
  int32_t max_model_len = 0;
  int32_t max_num_batched_tokens = 0;
  DType kv_dtype = DType::bf16;

  Json to_json() const;
  std::string describe() const;  // one line for start-up logs
};

DType resolve_kv_dtype(const std::string& kv_cache_dtype, DType weight_dtype);

// Estimated peak activation memory of one step of `tokens` tokens (vLLM profiles this with a
// dummy forward pass; the CUDA backend measures it instead of calling this).
double estimate_activation_bytes(const ModelSpec& m, int64_t tokens, int64_t max_seqs, int tp);

// Plans the pool for `memory_bytes` of device memory. `measured_reserve` >= 0 replaces the
// activation+runtime estimate (hardware runs measure it). Throws ConfigError with the numbers
// when the model does not fit or max-model-len exceeds the pool.
MemoryPlan plan_memory(const ModelSpec& m, double memory_bytes, const RunConfig& c,
                       double measured_reserve = -1.0);

}  // namespace twinfer
