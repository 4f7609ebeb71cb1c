// Model weights in memory for the CPU reference forward pass, loaded from a Hugging Face
// safetensors folder or a GGUF file, plus the random-checkpoint writer behind `make-model`.
//
// Everything is held as fp32 (bf16/fp16/quantized weights are converted at load), row-major,
// in Hugging Face's layout: a linear layer is [out_features, in_features] and y = x W^T.
// Q/K/V and gate/up are fused at load so one GEMM covers each group.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/model_spec.h"

namespace twinfer {

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> wqkv;       // [q_dim + 2 * kv_dim, hidden]: rows q, then k, then v
  std::vector<float> bqkv;       // [q_dim + 2 * kv_dim] (Qwen2's qkv bias) or empty
  std::vector<float> wo;         // [hidden, q_dim]
  std::vector<float> ffn_norm;   // [hidden]
  std::vector<float> w_gate_up;  // [2 * intermediate, hidden]: rows gate, then up
  std::vector<float> w_down;     // [hidden, intermediate]
};

struct ModelWeights {
  ModelSpec spec;
  std::string source;          // folder or file the weights came from (for messages)
  std::vector<float> embed;    // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden]; empty when tied to `embed`
  // RoPE inverse frequencies per rotated pair, [head_dim / 2], scaling already applied
  // (llama3 from the config, or llama.cpp's rope_freqs tensor from a GGUF file).
  std::vector<float> rope_inv_freq;

  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

// Checks the spec is one the CPU forward pass implements (Llama-shaped architectures, rope
// scaling none or llama3, head counts dividing evenly). Throws ConfigError naming `source`.
void check_supported(const ModelSpec& spec, const std::string& source);

// RoPE inverse frequencies as Hugging Face computes them (fp32), with llama3 scaling if set.
std::vector<float> rope_inv_freq(const ModelSpec& spec);

// Sizes every buffer for w.spec (both loaders fill the same layout).
void size_weight_buffers(ModelWeights& w);

// A folder with config.json and model.safetensors (or model.safetensors.index.json and its
// shards). Every tensor is checked against the config's shapes; errors name file and tensor.
ModelWeights load_safetensors_model(const std::string& dir);
// A GGUF v3 file (llama / qwen2 architectures).
ModelWeights load_gguf_model(const std::string& path);
// Where a checkpoint tensor lands in the fused layout above: `offset` elements into the fused
// tensor of `role` (layer -1 for model-level tensors). q/k/v rows go to wqkv, gate/up to
// w_gate_up, exactly as LayerWeights describes.
enum class WeightRole { embed, attn_norm, wqkv, bqkv, wo, ffn_norm, w_gate_up, w_down, final_norm, lm_head };
struct WeightDest {
  WeightRole role;
  int64_t layer;
  int64_t offset;
};
struct SafetensorsTensor;
using SpecVisitor = std::function<void(const ModelSpec&)>;
// Called once per tensor after its shape and dtype (F32, F16 or BF16) were checked.
using WeightVisitor = std::function<void(const SafetensorsTensor&, const std::string& file,
                                         const WeightDest&)>;
// Walks a safetensors folder with all of load_safetensors_model's checks, without converting:
// the CPU loader widens to fp32, the CUDA loader narrows to bf16 and uploads. `on_spec` runs
// once, before the first tensor.
ModelSpec visit_safetensors_model(const std::string& dir, const SpecVisitor& on_spec,
                                  const WeightVisitor& visit);
// Any F32/F16/BF16 tensor's elements as fp32.
void tensor_to_f32(const SafetensorsTensor& t, float* dst);

// Dispatches on the path: a *.gguf file, else a safetensors folder.
ModelWeights load_model_weights(const std::string& path);

// The config.json Hugging Face would write for `spec` (LlamaForCausalLM / Qwen2ForCausalLM).
Json hf_config_json(const ModelSpec& spec, DType dtype);
// `make-model`: writes dir/config.json and dir/model.safetensors with random weights:
// N(0, 0.02) for matrices and biases, 1 for norm weights. dtype is f32, f16 or bf16.
// Creates `dir` if needed. Deterministic in `seed`.
void write_random_checkpoint(const ModelSpec& spec, const std::string& dir, uint64_t seed,
                             DType dtype);

}  // namespace twinfer
