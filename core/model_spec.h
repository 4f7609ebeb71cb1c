// Model shapes: presets for well-known Llama-family models and any HF config.json.
// Everything the scheduler, memory planner and cost model need is derived from these fields.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace twinfer {

enum class DType { f32, f16, bf16, fp8_e4m3, q8_0, q4_0, q4_1 };

// Bytes per element (fractional for block-quantized types, scales included: q8_0 = 34/32).
double dtype_bytes(DType t);
std::string_view dtype_name(DType t);
std::optional<DType> parse_dtype(std::string_view s);  // "bf16", "bfloat16", "fp16", "fp8", ...

struct ModelSpec {
  std::string name;                  // preset name or the config path it came from
  std::string architecture = "llama";  // llama | mistral | qwen2 (all Llama-shaped)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless the config says otherwise
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  // Llama-3.1 style scaling ("llama3"), or "" for none. Factors as in HF's rope_scaling.
  std::string rope_scaling_type;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 0;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  DType dtype = DType::bf16;  // dtype of the checkpoint's weights

  // Derived quantities (GQA-aware).
  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t params_per_layer() const;
  int64_t param_count() const;  // embeddings + layers + final norm + lm_head (unless tied)
  double weight_bytes(DType t) const { return static_cast<double>(param_count()) * dtype_bytes(t); }
  double weight_bytes() const { return weight_bytes(dtype); }
  // K and V for one token across all layers: 2 * layers * kv_heads * head_dim * bytes.
  double kv_bytes_per_token(DType kv) const;

  Json to_json() const;
  // Throws ConfigError naming `source` and the missing/invalid field.
  static ModelSpec from_hf_config(const Json& cfg, const std::string& source);
  // A JSON written by to_json (as in config.json of a run).
  static ModelSpec from_json(const Json& j, const std::string& source);
};

std::optional<ModelSpec> model_preset(std::string_view name);
std::vector<std::string> model_preset_names();
// Name of a preset, a HF config.json path, or a folder holding one. Unknown names throw
// ConfigError listing the presets.
ModelSpec resolve_model(const std::string& name_or_path);

}  // namespace twinfer
