// Model weights resident on the GPU in bf16, in the fused layout of core/weights.h (qkv rows
// q|k|v, gate_up rows gate|up), carved out of one allocation so the weight bytes are exact.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model_spec.h"
#include "kernels/ops.h"

namespace twinfer::cuda {

struct DeviceLayer {
  bf16* attn_norm = nullptr;  // [hidden]
  bf16* wqkv = nullptr;       // [q_dim + 2 kv_dim, hidden]
  bf16* bqkv = nullptr;       // [q_dim + 2 kv_dim] or null
  bf16* wo = nullptr;         // [hidden, q_dim]
  bf16* ffn_norm = nullptr;   // [hidden]
  bf16* w_gate_up = nullptr;  // [2 intermediate, hidden]
  bf16* w_down = nullptr;     // [hidden, intermediate]
};

class DeviceModel {
 public:
  // A safetensors folder (F32/F16/BF16 narrowed to bf16), a .gguf file (dequantized, then bf16),
  // or a model preset name: random N(0, 0.02) weights drawn on the device from `seed` (norm
  // weights 1), the same distribution make-model writes, without touching the disk.
  static DeviceModel load(const std::string& path_or_preset, uint64_t seed);
  DeviceModel() = default;
  ~DeviceModel();
  DeviceModel(DeviceModel&& o) noexcept;
  DeviceModel& operator=(DeviceModel&& o) noexcept;
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  ModelSpec spec;
  std::string source;     // what was loaded, for messages
  bool random = false;    // weights drawn on the device
  bf16* embed = nullptr;  // [vocab, hidden]
  std::vector<DeviceLayer> layers;
  bf16* final_norm = nullptr;  // [hidden]
  bf16* lm_head = nullptr;     // [vocab, hidden]; == embed when tied
  float* inv_freq = nullptr;   // [head_dim / 2], rope scaling applied
  size_t bytes = 0;            // device bytes of all of the above

 private:
  void* base_ = nullptr;
  void allocate();  // carves every pointer above out of one cudaMalloc
};

}  // namespace twinfer::cuda
