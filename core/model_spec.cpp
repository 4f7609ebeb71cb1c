// Model shapes: dtype helpers, parameter and KV accounting, presets copied from the published
// HF config.json of each model, and the HF config parser.
#include "core/model_spec.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace twinfer {

double dtype_bytes(DType t) {
  switch (t) {
    case DType::f32: return 4.0;
    case DType::f16: return 2.0;
    case DType::bf16: return 2.0;
    case DType::fp8_e4m3: return 1.0;
    // GGML block formats, 32 weights per block: q8_0 = fp16 scale + 32 int8;
    // q4_0 = fp16 scale + 16 bytes of nibbles; q4_1 = fp16 scale + fp16 min + 16 bytes.
    case DType::q8_0: return 34.0 / 32.0;
    case DType::q4_0: return 18.0 / 32.0;
    case DType::q4_1: return 20.0 / 32.0;
  }
  return 0.0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
    case DType::fp8_e4m3: return "fp8_e4m3";
    case DType::q8_0: return "q8_0";
    case DType::q4_0: return "q4_0";
    case DType::q4_1: return "q4_1";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  std::string k(s);
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  if (k == "bf16" || k == "bfloat16") return DType::bf16;
  if (k == "fp16" || k == "float16" || k == "half" || k == "f16") return DType::f16;
  if (k == "fp32" || k == "float32" || k == "float" || k == "f32") return DType::f32;
  if (k == "fp8" || k == "fp8_e4m3" || k == "float8_e4m3fn") return DType::fp8_e4m3;
  if (k == "q8_0") return DType::q8_0;
  if (k == "q4_0") return DType::q4_0;
  if (k == "q4_1") return DType::q4_1;
  return std::nullopt;
}

// One decoder layer: q/k/v/o projections (+ q/k/v biases for Qwen2), SwiGLU MLP
// (gate, up: [inter, hidden]; down: [hidden, inter]) and two RMSNorm weight vectors.
int64_t ModelSpec::params_per_layer() const {
  int64_t attn = hidden_size * q_dim() + 2 * hidden_size * kv_dim() + q_dim() * hidden_size;
  if (qkv_bias) attn += q_dim() + 2 * kv_dim();
  int64_t mlp = 3 * hidden_size * intermediate_size;
  return attn + mlp + 2 * hidden_size;
}

int64_t ModelSpec::param_count() const {
  int64_t embed = vocab_size * hidden_size;
  int64_t lm_head = tie_word_embeddings ? 0 : vocab_size * hidden_size;
  return embed + num_layers * params_per_layer() + hidden_size + lm_head;
}

double ModelSpec::kv_bytes_per_token(DType kv) const {
  return 2.0 * static_cast<double>(num_layers * kv_dim()) * dtype_bytes(kv);
}

// ---------------------------------------------------------------------------------------------
// Presets. Values are those of each model's published config.json on the Hugging Face Hub.

namespace {

struct Shape {
  const char* name;
  const char* arch;
  int64_t vocab, hidden, inter, layers, heads, kv_heads, max_pos;
  double theta, eps;
  bool tie;
  int64_t bos;
  std::vector<int64_t> eos;
  DType dtype;
};

ModelSpec from_shape(const Shape& s) {
  ModelSpec m;
  m.name = s.name;
  m.architecture = s.arch;
  m.vocab_size = s.vocab;
  m.hidden_size = s.hidden;
  m.intermediate_size = s.inter;
  m.num_layers = s.layers;
  m.num_heads = s.heads;
  m.num_kv_heads = s.kv_heads;
  m.head_dim = s.hidden / s.heads;
  m.max_position_embeddings = s.max_pos;
  m.rope_theta = s.theta;
  m.rms_norm_eps = s.eps;
  m.tie_word_embeddings = s.tie;
  m.qkv_bias = std::string_view(s.arch) == "qwen2";
  m.bos_token_id = s.bos;
  m.eos_token_ids = s.eos;
  m.dtype = s.dtype;
  return m;
}

const std::vector<ModelSpec>& presets() {
  static const std::vector<ModelSpec> all = [] {
    const Shape shapes[] = {
        // meta-llama/Llama-2-{7b,13b,70b}-hf
        {"llama-2-7b", "llama", 32000, 4096, 11008, 32, 32, 32, 4096, 10000.0, 1e-5, false, 1,
         {2}, DType::f16},
        {"llama-2-13b", "llama", 32000, 5120, 13824, 40, 40, 40, 4096, 10000.0, 1e-5, false, 1,
         {2}, DType::f16},
        {"llama-2-70b", "llama", 32000, 8192, 28672, 80, 64, 8, 4096, 10000.0, 1e-5, false, 1,
         {2}, DType::f16},
        // meta-llama/Meta-Llama-3-{8B,70B}
        {"llama-3-8b", "llama", 128256, 4096, 14336, 32, 32, 8, 8192, 500000.0, 1e-5, false,
         128000, {128001}, DType::bf16},
        {"llama-3-70b", "llama", 128256, 8192, 28672, 80, 64, 8, 8192, 500000.0, 1e-5, false,
         128000, {128001}, DType::bf16},
        // meta-llama/Llama-3.1-8B-Instruct (rope_scaling set below)
        {"llama-3.1-8b", "llama", 128256, 4096, 14336, 32, 32, 8, 131072, 500000.0, 1e-5, false,
         128000, {128001, 128008, 128009}, DType::bf16},
        // mistralai/Mistral-7B-v0.1 (sliding_window 4096 is not modelled; see docs)
        {"mistral-7b", "mistral", 32000, 4096, 14336, 32, 32, 8, 32768, 10000.0, 1e-5, false, 1,
         {2}, DType::bf16},
        // Qwen/Qwen2.5-7B
        {"qwen2.5-7b", "qwen2", 152064, 3584, 18944, 28, 28, 4, 131072, 1000000.0, 1e-6, false,
         151643, {151643}, DType::bf16},
        // HuggingFaceTB/SmolLM2-135M
        {"smollm2-135m", "llama", 49152, 576, 1536, 30, 9, 3, 8192, 100000.0, 1e-5, true, 0,
         {0}, DType::bf16},
    };
    std::vector<ModelSpec> v;
    for (const Shape& s : shapes) v.push_back(from_shape(s));
    for (ModelSpec& m : v) {
      if (m.name == "llama-3.1-8b") {
        m.rope_scaling_type = "llama3";
        m.rope_factor = 8.0;
        m.rope_low_freq_factor = 1.0;
        m.rope_high_freq_factor = 4.0;
        m.rope_original_max_position = 8192;
      }
    }
    return v;
  }();
  return all;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Field readers: every failure names the file and the field.

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw ConfigError(source + ": " + msg);
}

const Json* present(const Json& cfg, std::string_view key) {
  const Json* v = cfg.get(key);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

int64_t req_int(const Json& cfg, const std::string& source, std::string_view key,
                int64_t min_value = 1) {
  const Json* v = present(cfg, key);
  if (!v) fail(source, "missing field '" + std::string(key) + "'");
  int64_t x = 0;
  try {
    x = v->as_int(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
  if (x < min_value)
    fail(source, "field '" + std::string(key) + "' = " + std::to_string(x) + ", expected >= " +
                     std::to_string(min_value));
  return x;
}

int64_t opt_int(const Json& cfg, const std::string& source, std::string_view key, int64_t dflt,
                int64_t min_value = 1) {
  return present(cfg, key) ? req_int(cfg, source, key, min_value) : dflt;
}

double opt_num(const Json& cfg, const std::string& source, std::string_view key, double dflt) {
  const Json* v = present(cfg, key);
  if (!v) return dflt;
  try {
    return v->as_number(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
}

bool opt_bool(const Json& cfg, const std::string& source, std::string_view key, bool dflt) {
  const Json* v = present(cfg, key);
  if (!v) return dflt;
  try {
    return v->as_bool(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
}

std::string opt_str(const Json& cfg, const std::string& source, std::string_view key,
                    const std::string& dflt) {
  const Json* v = present(cfg, key);
  if (!v) return dflt;
  try {
    return v->as_string(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
}

// eos_token_id is an int, a list of ints (Llama 3.1 instruct) or null.
std::vector<int64_t> read_eos(const Json& cfg, const std::string& source, std::string_view key) {
  std::vector<int64_t> out;
  const Json* v = present(cfg, key);
  if (!v) return out;
  try {
    if (v->is_array()) {
      for (const Json& e : v->as_array()) out.push_back(e.as_int(key));
    } else {
      out.push_back(v->as_int(key));
    }
  } catch (const JsonError& e) {
    fail(source, std::string(e.what()) + " (expected an integer or a list of integers)");
  }
  return out;
}

// Reads HF rope_scaling (or the newer rope_parameters) into m. Only "llama3" changes the
// frequencies among the types we support; other types would silently give wrong logits.
void read_rope_scaling(const Json& rs, const std::string& source, const std::string& field,
                       ModelSpec& m) {
  if (!rs.is_object()) fail(source, "field '" + field + "': expected an object or null");
  std::string type = opt_str(rs, source, "rope_type", opt_str(rs, source, "type", "default"));
  if (type == "default") return;
  if (type != "llama3")
    fail(source, "field '" + field + "': rope type '" + type +
                     "' is not supported (supported: default, llama3)");
  auto need = [&](std::string_view k) {
    const Json* v = present(rs, k);
    if (!v) fail(source, "missing field '" + field + "." + std::string(k) + "'");
    try {
      return v->as_number(k);
    } catch (const JsonError& e) {
      fail(source, field + "." + e.what());
    }
  };
  m.rope_scaling_type = "llama3";
  m.rope_factor = need("factor");
  m.rope_low_freq_factor = need("low_freq_factor");
  m.rope_high_freq_factor = need("high_freq_factor");
  m.rope_original_max_position = static_cast<int64_t>(need("original_max_position_embeddings"));
  if (m.rope_factor <= 0 || m.rope_low_freq_factor <= 0 ||
      m.rope_high_freq_factor <= m.rope_low_freq_factor || m.rope_original_max_position <= 0)
    fail(source, "field '" + field +
                     "': expected factor > 0, 0 < low_freq_factor < high_freq_factor and "
                     "original_max_position_embeddings > 0");
}

void validate_shape(const ModelSpec& m, const std::string& source) {
  if (m.num_heads % m.num_kv_heads != 0)
    fail(source, "num_attention_heads (" + std::to_string(m.num_heads) +
                     ") must be a multiple of num_key_value_heads (" +
                     std::to_string(m.num_kv_heads) + ")");
  if (m.head_dim <= 0 || m.head_dim % 2 != 0)
    fail(source, "head_dim = " + std::to_string(m.head_dim) + ", expected a positive even number");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

ModelSpec ModelSpec::from_hf_config(const Json& cfg, const std::string& source) {
  if (!cfg.is_object()) fail(source, "expected a JSON object (a HF config.json)");
  ModelSpec m;
  m.name = source;

  std::string type = opt_str(cfg, source, "model_type", "");
  if (type.empty()) {
    // Older exports carry only `architectures`.
    const Json* archs = present(cfg, "architectures");
    std::string a = (archs && archs->is_array() && !archs->as_array().empty() &&
                     archs->as_array()[0].is_string())
                        ? archs->as_array()[0].as_string()
                        : "";
    if (a == "LlamaForCausalLM") type = "llama";
    else if (a == "MistralForCausalLM") type = "mistral";
    else if (a == "Qwen2ForCausalLM") type = "qwen2";
    else fail(source, "missing field 'model_type'");
  }
  if (type != "llama" && type != "mistral" && type != "qwen2")
    fail(source, "model_type '" + type + "' is not supported (supported: llama, mistral, qwen2)");
  m.architecture = type;

  m.vocab_size = req_int(cfg, source, "vocab_size");
  m.hidden_size = req_int(cfg, source, "hidden_size");
  m.intermediate_size = req_int(cfg, source, "intermediate_size");
  m.num_layers = req_int(cfg, source, "num_hidden_layers");
  m.num_heads = req_int(cfg, source, "num_attention_heads");
  m.num_kv_heads = opt_int(cfg, source, "num_key_value_heads", m.num_heads);
  if (present(cfg, "head_dim")) {
    m.head_dim = req_int(cfg, source, "head_dim");
  } else {
    if (m.hidden_size % m.num_heads != 0)
      fail(source, "hidden_size (" + std::to_string(m.hidden_size) +
                       ") is not a multiple of num_attention_heads and no head_dim is given");
    m.head_dim = m.hidden_size / m.num_heads;
  }
  m.max_position_embeddings = req_int(cfg, source, "max_position_embeddings");
  m.rms_norm_eps = opt_num(cfg, source, "rms_norm_eps", 1e-6);
  m.tie_word_embeddings = opt_bool(cfg, source, "tie_word_embeddings", false);
  m.bos_token_id = opt_int(cfg, source, "bos_token_id", -1, 0);
  m.eos_token_ids = read_eos(cfg, source, "eos_token_id");

  // transformers >= 4.56 moves rope_theta and the scaling into `rope_parameters`.
  const Json* rp = present(cfg, "rope_parameters");
  if (rp && rp->is_object()) {
    m.rope_theta = opt_num(*rp, source, "rope_theta", opt_num(cfg, source, "rope_theta", 1e4));
    read_rope_scaling(*rp, source, "rope_parameters", m);
  } else {
    m.rope_theta = opt_num(cfg, source, "rope_theta", 10000.0);
    if (const Json* rs = present(cfg, "rope_scaling")) read_rope_scaling(*rs, source, "rope_scaling", m);
  }
  if (m.rope_theta <= 0) fail(source, "field 'rope_theta' must be > 0");

  std::string act = opt_str(cfg, source, "hidden_act", "silu");
  if (act != "silu")
    fail(source, "hidden_act '" + act + "' is not supported (expected silu: SwiGLU MLP)");
  // Qwen2 always has q/k/v biases; Llama's attention_bias would add an o_proj bias too.
  m.qkv_bias = type == "qwen2";
  if (type != "qwen2" && opt_bool(cfg, source, "attention_bias", false))
    fail(source, "attention_bias = true is not supported");
  if (opt_bool(cfg, source, "mlp_bias", false)) fail(source, "mlp_bias = true is not supported");

  std::string dt = opt_str(cfg, source, "torch_dtype", opt_str(cfg, source, "dtype", "bfloat16"));
  auto parsed = parse_dtype(dt);
  if (!parsed || (*parsed != DType::f32 && *parsed != DType::f16 && *parsed != DType::bf16))
    fail(source, "torch_dtype '" + dt + "' is not supported (expected float32, float16 or "
                 "bfloat16)");
  m.dtype = *parsed;
  validate_shape(m, source);
  return m;
}

Json ModelSpec::to_json() const {
  Json j = Json::object();
  j["name"] = name;
  j["architecture"] = architecture;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_layers"] = num_layers;
  j["num_heads"] = num_heads;
  j["num_kv_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rope_theta"] = rope_theta;
  if (rope_scaling_type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    Json rs = Json::object();
    rs["rope_type"] = rope_scaling_type;
    rs["factor"] = rope_factor;
    rs["low_freq_factor"] = rope_low_freq_factor;
    rs["high_freq_factor"] = rope_high_freq_factor;
    rs["original_max_position_embeddings"] = rope_original_max_position;
    j["rope_scaling"] = std::move(rs);
  }
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["qkv_bias"] = qkv_bias;
  j["bos_token_id"] = bos_token_id;
  Json eos = Json::array();
  for (int64_t e : eos_token_ids) eos.push_back(e);
  j["eos_token_ids"] = std::move(eos);
  j["dtype"] = std::string(dtype_name(dtype));
  // Informational; from_json ignores it (recomputed from the shape).
  Json d = Json::object();
  d["param_count"] = param_count();
  d["weight_bytes"] = weight_bytes();
  d["kv_bytes_per_token_bf16"] = kv_bytes_per_token(DType::bf16);
  j["derived"] = std::move(d);
  return j;
}

ModelSpec ModelSpec::from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "model: expected a JSON object");
  static const char* known[] = {"name", "architecture", "vocab_size", "hidden_size",
                                "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                                "head_dim", "max_position_embeddings", "rope_theta",
                                "rope_scaling", "rms_norm_eps", "tie_word_embeddings",
                                "qkv_bias", "bos_token_id", "eos_token_ids", "dtype", "derived"};
  for (const auto& [k, v] : j.as_object()) {
    (void)v;
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      fail(source, "model: unknown field '" + k + "'");
  }
  ModelSpec m;
  m.name = opt_str(j, source, "name", source);
  m.architecture = opt_str(j, source, "architecture", "llama");
  m.vocab_size = req_int(j, source, "vocab_size");
  m.hidden_size = req_int(j, source, "hidden_size");
  m.intermediate_size = req_int(j, source, "intermediate_size");
  m.num_layers = req_int(j, source, "num_layers");
  m.num_heads = req_int(j, source, "num_heads");
  m.num_kv_heads = req_int(j, source, "num_kv_heads");
  m.head_dim = req_int(j, source, "head_dim");
  m.max_position_embeddings = req_int(j, source, "max_position_embeddings");
  m.rope_theta = opt_num(j, source, "rope_theta", 10000.0);
  if (const Json* rs = present(j, "rope_scaling")) read_rope_scaling(*rs, source, "rope_scaling", m);
  m.rms_norm_eps = opt_num(j, source, "rms_norm_eps", 1e-5);
  m.tie_word_embeddings = opt_bool(j, source, "tie_word_embeddings", false);
  m.qkv_bias = opt_bool(j, source, "qkv_bias", false);
  m.bos_token_id = opt_int(j, source, "bos_token_id", -1, -1);
  m.eos_token_ids = read_eos(j, source, "eos_token_ids");
  std::string dt = opt_str(j, source, "dtype", "bf16");
  auto parsed = parse_dtype(dt);
  if (!parsed) fail(source, "model: unknown dtype '" + dt + "'");
  m.dtype = *parsed;
  validate_shape(m, source);
  return m;
}

std::optional<ModelSpec> model_preset(std::string_view name) {
  for (const ModelSpec& m : presets())
    if (m.name == name) return m;
  return std::nullopt;
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const ModelSpec& m : presets()) names.push_back(m.name);
  return names;
}

ModelSpec resolve_model(const std::string& name_or_path) {
  if (auto m = model_preset(name_or_path)) return *m;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(name_or_path);
  if (fs::is_directory(p, ec)) {
    fs::path cfg = p / "config.json";
    if (!fs::is_regular_file(cfg, ec))
      throw ConfigError(name_or_path + ": folder holds no config.json");
    p = cfg;
  } else if (!fs::is_regular_file(p, ec)) {
    throw ConfigError("unknown model '" + name_or_path + "': not a preset (known presets: " +
                      join_names(model_preset_names()) +
                      ") nor a HF config.json file or a folder holding one");
  }
  Json cfg;
  try {
    cfg = Json::parse_file(p.string());
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  return ModelSpec::from_hf_config(cfg, p.string());
}

}  // namespace twinfer
