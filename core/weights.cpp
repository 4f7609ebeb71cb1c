// Safetensors-folder loading, spec checks shared by both loaders, and make-model.
#include "core/weights.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <set>
#include <thread>
#include <atomic>
#include <algorithm>

#include "core/error.h"
#include "core/safetensors.h"

namespace twinfer {

namespace fs = std::filesystem;

void check_supported(const ModelSpec& s, const std::string& source) {
  auto fail = [&](const std::string& msg) { return ConfigError(source + ": " + msg); };
  if (s.architecture != "llama" && s.architecture != "mistral" && s.architecture != "qwen2")
    throw fail("unsupported architecture '" + s.architecture +
               "', expected one of llama, mistral, qwen2 (Llama-shaped decoders)");
  if (s.vocab_size <= 0 || s.hidden_size <= 0 || s.intermediate_size <= 0 || s.num_layers <= 0 ||
      s.num_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0)
    throw fail("model sizes must be positive (vocab_size, hidden_size, intermediate_size, "
               "num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim)");
  if (s.num_heads % s.num_kv_heads != 0)
    throw fail("num_attention_heads " + std::to_string(s.num_heads) +
               " is not a multiple of num_key_value_heads " + std::to_string(s.num_kv_heads));
  if (s.head_dim % 2 != 0)
    throw fail("head_dim " + std::to_string(s.head_dim) + " must be even for RoPE");
  if (s.qkv_bias && s.architecture != "qwen2")
    throw fail("q/k/v biases are supported for qwen2 only (Llama's attention_bias also biases "
               "o_proj), got architecture " + s.architecture);
  if (!s.rope_scaling_type.empty() && s.rope_scaling_type != "llama3" &&
      s.rope_scaling_type != "default")
    throw fail("unsupported rope_scaling type '" + s.rope_scaling_type +
               "', expected none or llama3");
  if (s.rope_scaling_type == "llama3" &&
      (s.rope_original_max_position <= 0 || s.rope_high_freq_factor == s.rope_low_freq_factor))
    throw fail("llama3 rope_scaling needs original_max_position_embeddings > 0 and "
               "high_freq_factor != low_freq_factor");
}

std::vector<float> rope_inv_freq(const ModelSpec& s) {
  const int64_t half = s.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  // Hugging Face: 1 / base ** (arange(0, dim, 2).float() / dim), evaluated in fp32.
  for (int64_t i = 0; i < half; ++i) {
    float expo = static_cast<float>(2 * i) / static_cast<float>(s.head_dim);
    inv[static_cast<size_t>(i)] =
        1.0f / std::pow(static_cast<float>(s.rope_theta), expo);
  }
  if (s.rope_scaling_type != "llama3") return inv;
  // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between
  // interpolated smoothly (transformers' _compute_llama3_parameters).
  const float factor = static_cast<float>(s.rope_factor);
  const float low = static_cast<float>(s.rope_low_freq_factor);
  const float high = static_cast<float>(s.rope_high_freq_factor);
  const float old_ctx = static_cast<float>(s.rope_original_max_position);
  const float low_wavelen = old_ctx / low;
  const float high_wavelen = old_ctx / high;
  for (float& f : inv) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
    float scaled = wavelen > low_wavelen ? f / factor : f;
    if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
    }
    f = scaled;
  }
  return inv;
}

namespace {

std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

void tensor_to_f32(const SafetensorsTensor& t, float* dst) {
  const size_t n = static_cast<size_t>(t.numel());
  const uint8_t* p = t.data.data();
  if (t.dtype == "F32") {
    std::memcpy(dst, p, n * 4);
  } else {
    const bool bf = t.dtype == "BF16";
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      dst[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
}

namespace {

struct Located {
  const SafetensorsTensor* tensor;
  const std::string* file;
};

}  // namespace

void size_weight_buffers(ModelWeights& w) {
  const ModelSpec& s = w.spec;
  const int64_t H = s.hidden_size, V = s.vocab_size, I = s.intermediate_size;
  const int64_t QD = s.q_dim(), KD = s.kv_dim();
  w.embed.resize(static_cast<size_t>(V * H));
  w.layers.resize(static_cast<size_t>(s.num_layers));
  for (LayerWeights& L : w.layers) {
    L.attn_norm.resize(static_cast<size_t>(H));
    L.ffn_norm.resize(static_cast<size_t>(H));
    L.wqkv.resize(static_cast<size_t>((QD + 2 * KD) * H));
    L.wo.resize(static_cast<size_t>(H * QD));
    L.w_gate_up.resize(static_cast<size_t>(2 * I * H));
    L.w_down.resize(static_cast<size_t>(H * I));
  }
}

ModelSpec visit_safetensors_model(const std::string& dir, const SpecVisitor& on_spec,
                                  const WeightVisitor& visit) {
  const std::string cfg_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cfg_path))
    throw ConfigError(dir + ": expected a Hugging Face model folder with config.json");
  Json cfg;
  try {
    cfg = Json::parse_file(cfg_path);
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  ModelSpec spec = ModelSpec::from_hf_config(cfg, cfg_path);
  if (const Json* act = cfg.get("hidden_act"); act != nullptr && act->is_string() &&
                                               act->as_string() != "silu")
    throw ConfigError(cfg_path + ": hidden_act '" + act->as_string() + "' unsupported, expected silu");
  check_supported(spec, cfg_path);
  const ModelSpec& s = spec;
  on_spec(spec);

  // Shards: the index's weight_map names the file of each tensor; otherwise one file.
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    Json idx;
    try {
      idx = Json::parse_file(index_path.string());
    } catch (const JsonError& e) {
      throw ConfigError(e.what());
    }
    const Json* wm = idx.get("weight_map");
    if (wm == nullptr || !wm->is_object())
      throw ConfigError(index_path.string() + ": expected an object field 'weight_map'");
    std::set<std::string> uniq;
    for (const auto& [name, file] : wm->as_object()) {
      if (!file.is_string() || file.as_string().find('/') != std::string::npos)
        throw ConfigError(index_path.string() + ": weight_map['" + name +
                          "'] must be a file name in the folder");
      weight_map[name] = file.as_string();
      uniq.insert(file.as_string());
    }
    files.assign(uniq.begin(), uniq.end());
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    files.push_back("model.safetensors");
  } else {
    throw ConfigError(dir + ": expected model.safetensors or model.safetensors.index.json");
  }

  std::vector<SafetensorsFile> shards;
  std::vector<std::string> paths;
  shards.reserve(files.size());
  for (const auto& f : files) {
    paths.push_back((fs::path(dir) / f).string());
    shards.push_back(SafetensorsFile::open(paths.back()));
  }
  std::map<std::string, Located, std::less<>> found;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const auto& t : shards[i].tensors()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != files[i]) continue;  // index is authoritative
      }
      if (found.count(t.name))
        throw ConfigError(paths[i] + ": tensor '" + t.name + "' also appears in " +
                          *found[t.name].file);
      found[t.name] = {&t, &paths[i]};
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!found.count(name))
      throw ConfigError((fs::path(dir) / file).string() + ": tensor '" + name +
                        "' listed in model.safetensors.index.json is missing");

  std::set<std::string> used;
  auto take = [&](const std::string& name, std::vector<int64_t> shape, const std::string& why,
                  WeightRole role, int64_t layer, int64_t offset) {
    auto it = found.find(name);
    if (it == found.end())
      throw ConfigError(dir + ": missing tensor '" + name + "' with shape " + shape_str(shape) +
                        " (" + why + ")");
    const SafetensorsTensor& t = *it->second.tensor;
    const std::string& file = *it->second.file;
    if (t.shape != shape)
      throw ConfigError(file + ": tensor '" + t.name + "' has shape " + shape_str(t.shape) +
                        ", expected " + shape_str(shape) + " (" + why + ")");
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
      throw ConfigError(file + ": tensor '" + t.name + "' has dtype " + t.dtype +
                        ", expected F32, F16 or BF16");
    visit(t, file, WeightDest{role, layer, offset});
    used.insert(name);
  };
  using R = WeightRole;
  const int64_t H = s.hidden_size, V = s.vocab_size, I = s.intermediate_size;
  const int64_t QD = s.q_dim(), KD = s.kv_dim();
  const std::string hs = "hidden_size " + std::to_string(H);
  const std::string vs = "vocab_size " + std::to_string(V) + ", " + hs;
  const std::string qs = "num_attention_heads " + std::to_string(s.num_heads) + " x head_dim " +
                         std::to_string(s.head_dim) + ", " + hs;
  const std::string ks = "num_key_value_heads " + std::to_string(s.num_kv_heads) +
                         " x head_dim " + std::to_string(s.head_dim) + ", " + hs;
  const std::string is = "intermediate_size " + std::to_string(I) + ", " + hs;

  take("model.embed_tokens.weight", {V, H}, vs, R::embed, -1, 0);
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    take(p + "input_layernorm.weight", {H}, hs, R::attn_norm, l, 0);
    take(p + "self_attn.q_proj.weight", {QD, H}, qs, R::wqkv, l, 0);
    take(p + "self_attn.k_proj.weight", {KD, H}, ks, R::wqkv, l, QD * H);
    take(p + "self_attn.v_proj.weight", {KD, H}, ks, R::wqkv, l, (QD + KD) * H);
    if (s.qkv_bias) {
      take(p + "self_attn.q_proj.bias", {QD}, qs, R::bqkv, l, 0);
      take(p + "self_attn.k_proj.bias", {KD}, ks, R::bqkv, l, QD);
      take(p + "self_attn.v_proj.bias", {KD}, ks, R::bqkv, l, QD + KD);
    }
    take(p + "self_attn.o_proj.weight", {H, QD}, qs, R::wo, l, 0);
    take(p + "post_attention_layernorm.weight", {H}, hs, R::ffn_norm, l, 0);
    take(p + "mlp.gate_proj.weight", {I, H}, is, R::w_gate_up, l, 0);
    take(p + "mlp.up_proj.weight", {I, H}, is, R::w_gate_up, l, I * H);
    take(p + "mlp.down_proj.weight", {H, I}, is, R::w_down, l, 0);
  }
  take("model.norm.weight", {H}, hs, R::final_norm, -1, 0);
  if (!s.tie_word_embeddings) {
    take("lm_head.weight", {V, H}, vs + ", tie_word_embeddings false", R::lm_head, -1, 0);
  } else if (found.count("lm_head.weight")) {
    used.insert("lm_head.weight");  // tied: transformers ignores a stored copy too
  }
  for (const auto& [name, loc] : found) {
    if (used.count(name)) continue;
    // Old Llama checkpoints store RoPE's inverse frequencies; they are recomputed from config.
    if (name.ends_with(".self_attn.rotary_emb.inv_freq")) continue;
    throw ConfigError(*loc.file + ": unexpected tensor '" + name + "' for architecture " +
                      s.architecture + " with " + std::to_string(s.num_layers) + " layers");
  }
  return spec;
}

ModelWeights load_safetensors_model(const std::string& dir) {
  ModelWeights w;
  w.source = dir;
  auto on_spec = [&](const ModelSpec& spec) {
    w.spec = spec;
    size_weight_buffers(w);
  };
  visit_safetensors_model(dir, on_spec, [&](const SafetensorsTensor& t, const std::string&,
                                            const WeightDest& d) {
    float* base = nullptr;
    LayerWeights* L = d.layer >= 0 ? &w.layers[static_cast<size_t>(d.layer)] : nullptr;
    switch (d.role) {
      case WeightRole::embed: base = w.embed.data(); break;
      case WeightRole::attn_norm: base = L->attn_norm.data(); break;
      case WeightRole::wqkv: base = L->wqkv.data(); break;
      case WeightRole::bqkv:
        L->bqkv.resize(static_cast<size_t>(w.spec.q_dim() + 2 * w.spec.kv_dim()));
        base = L->bqkv.data();
        break;
      case WeightRole::wo: base = L->wo.data(); break;
      case WeightRole::ffn_norm: base = L->ffn_norm.data(); break;
      case WeightRole::w_gate_up: base = L->w_gate_up.data(); break;
      case WeightRole::w_down: base = L->w_down.data(); break;
      case WeightRole::final_norm:
        w.final_norm.resize(static_cast<size_t>(w.spec.hidden_size));
        base = w.final_norm.data();
        break;
      case WeightRole::lm_head:
        w.lm_head.resize(static_cast<size_t>(w.spec.vocab_size * w.spec.hidden_size));
        base = w.lm_head.data();
        break;
    }
    tensor_to_f32(t, base + d.offset);
  });
  w.rope_inv_freq = rope_inv_freq(w.spec);
  return w;
}

ModelWeights load_model_weights(const std::string& path) {
  if (path.ends_with(".gguf")) return load_gguf_model(path);
  return load_safetensors_model(path);
}

// ---- make-model --------------------------------------------------------------------------------

Json hf_config_json(const ModelSpec& s, DType dtype) {
  Json c = Json::object();
  const std::string arch = s.architecture == "qwen2"     ? "Qwen2ForCausalLM"
                           : s.architecture == "mistral" ? "MistralForCausalLM"
                                                         : "LlamaForCausalLM";
  Json archs = Json::array();
  archs.push_back(arch);
  c["architectures"] = std::move(archs);
  c["model_type"] = s.architecture;
  c["vocab_size"] = s.vocab_size;
  c["hidden_size"] = s.hidden_size;
  c["intermediate_size"] = s.intermediate_size;
  c["num_hidden_layers"] = s.num_layers;
  c["num_attention_heads"] = s.num_heads;
  c["num_key_value_heads"] = s.num_kv_heads;
  c["head_dim"] = s.head_dim;
  c["max_position_embeddings"] = s.max_position_embeddings;
  c["rope_theta"] = s.rope_theta;
  c["rms_norm_eps"] = s.rms_norm_eps;
  c["hidden_act"] = "silu";
  c["tie_word_embeddings"] = s.tie_word_embeddings;
  if (s.architecture == "llama") c["attention_bias"] = false;
  if (s.architecture == "mistral" || s.architecture == "qwen2") c["sliding_window"] = nullptr;
  if (s.rope_scaling_type == "llama3") {
    Json r = Json::object();
    r["rope_type"] = "llama3";
    r["factor"] = s.rope_factor;
    r["low_freq_factor"] = s.rope_low_freq_factor;
    r["high_freq_factor"] = s.rope_high_freq_factor;
    r["original_max_position_embeddings"] = s.rope_original_max_position;
    c["rope_scaling"] = std::move(r);
  } else {
    c["rope_scaling"] = nullptr;
  }
  if (s.bos_token_id >= 0) c["bos_token_id"] = s.bos_token_id;
  if (s.eos_token_ids.size() == 1) {
    c["eos_token_id"] = s.eos_token_ids[0];
  } else if (!s.eos_token_ids.empty()) {
    Json e = Json::array();
    for (int64_t id : s.eos_token_ids) e.push_back(Json(id));
    c["eos_token_id"] = std::move(e);
  }
  c["torch_dtype"] = dtype == DType::f32 ? "float32" : dtype == DType::f16 ? "float16" : "bfloat16";
  return c;
}

namespace {

// splitmix64 + Box-Muller: the same bytes on every platform for a given seed.
struct Normal {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double operator()() {
    return std::sqrt(-2.0 * std::log(uniform())) * std::cos(2.0 * std::numbers::pi * uniform());
  }
};

}  // namespace

void write_random_checkpoint(const ModelSpec& spec, const std::string& dir, uint64_t seed,
                             DType dtype) {
  if (dtype != DType::f32 && dtype != DType::f16 && dtype != DType::bf16)
    throw ConfigError("make-model: dtype " + std::string(dtype_name(dtype)) +
                      " unsupported, expected f32, f16 or bf16");
  check_supported(spec, "make-model " + spec.name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError(dir + ": cannot create folder: " + ec.message());
  {
    std::ofstream out(fs::path(dir) / "config.json");
    out << hf_config_json(spec, dtype).dump(2) << "\n";
    if (!out) throw ConfigError(dir + "/config.json: write failed");
  }
  const std::string dt = dtype == DType::f32 ? "F32" : dtype == DType::f16 ? "F16" : "BF16";
  const int64_t H = spec.hidden_size, V = spec.vocab_size, I = spec.intermediate_size;
  const int64_t QD = spec.q_dim(), KD = spec.kv_dim();
  std::vector<SafetensorsTensorData> tensors;
  std::vector<uint8_t> is_norm;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool norm) {
    tensors.push_back({std::move(name), dt, std::move(shape), {}});
    is_norm.push_back(norm);
  };
  add("model.embed_tokens.weight", {V, H}, false);
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, true);
    add(p + "self_attn.q_proj.weight", {QD, H}, false);
    add(p + "self_attn.k_proj.weight", {KD, H}, false);
    add(p + "self_attn.v_proj.weight", {KD, H}, false);
    if (spec.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {QD}, false);
      add(p + "self_attn.k_proj.bias", {KD}, false);
      add(p + "self_attn.v_proj.bias", {KD}, false);
    }
    add(p + "self_attn.o_proj.weight", {H, QD}, false);
    add(p + "post_attention_layernorm.weight", {H}, true);
    add(p + "mlp.gate_proj.weight", {I, H}, false);
    add(p + "mlp.up_proj.weight", {I, H}, false);
    add(p + "mlp.down_proj.weight", {H, I}, false);
  }
  add("model.norm.weight", {H}, true);
  if (!spec.tie_word_embeddings) add("lm_head.weight", {V, H}, false);

  // Each 1M-element chunk of each tensor draws from its own stream, so chunks fill in parallel
  // (an 8B checkpoint is 8e9 draws) and the bytes still depend only on the seed.
  constexpr int64_t kChunk = 1 << 20;
  const unsigned threads = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  write_safetensors_streamed(
      (fs::path(dir) / "model.safetensors").string(), tensors,
      [&](size_t i, std::vector<uint8_t>& buf) {
        int64_t n = 1;
        for (int64_t d : tensors[i].shape) n *= d;
        const size_t esize = dtype == DType::f32 ? 4 : 2;
        buf.resize(static_cast<size_t>(n) * esize);
        const int64_t chunks = (n + kChunk - 1) / kChunk;
        std::atomic<int64_t> next{0};
        auto work = [&] {
          for (int64_t c; (c = next.fetch_add(1)) < chunks;) {
            Normal rng{seed ^ (0x9e3779b97f4a7c15ULL * (i + 1)) ^ (static_cast<uint64_t>(c) << 32)};
            for (int64_t k = c * kChunk; k < std::min(n, (c + 1) * kChunk); ++k) {
              const float v = is_norm[i] ? 1.0f : static_cast<float>(0.02 * rng());
              uint8_t* dst = buf.data() + static_cast<size_t>(k) * esize;
              if (dtype == DType::f32) {
                std::memcpy(dst, &v, 4);
              } else {
                uint16_t h = dtype == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
                std::memcpy(dst, &h, 2);
              }
            }
          }
        };
        std::vector<std::thread> pool;
        const unsigned nt = static_cast<unsigned>(std::min<int64_t>(threads, chunks));
        for (unsigned t = 1; t < nt; ++t) pool.emplace_back(work);
        work();
        for (auto& th : pool) th.join();
      },
      {{"format", "pt"}});
}

}  // namespace twinfer
