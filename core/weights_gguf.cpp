// GGUF -> ModelWeights: llama.cpp's metadata keys and tensor names mapped onto the Hugging Face
// layout the forward pass uses. llama.cpp's converter interleaves the rotary pairs of Llama's
// Q and K rows (its rope kernel rotates adjacent elements); the permutation is undone here so
// the forward pass stays the HF rotate-half one. Qwen2 files are stored unpermuted.
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/gguf.h"
#include "core/weights.h"

namespace twinfer {

namespace {

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Rows of one head come as pairs (2i, 2i+1) in llama.cpp; HF wants (i, i + head_dim/2).
void unpermute_rows(float* w, int64_t n_heads, int64_t head_dim, int64_t cols,
                    std::vector<float>& tmp) {
  const int64_t half = head_dim / 2;
  tmp.assign(w, w + n_heads * head_dim * cols);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t part = 0; part < 2; ++part)
        std::memcpy(w + (h * head_dim + part * half + i) * cols,
                    tmp.data() + (h * head_dim + 2 * i + part) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
}

std::optional<DType> dtype_of(uint32_t ggml) {
  switch (ggml) {
    case 0: return DType::f32;
    case 1: return DType::f16;
    case 30: return DType::bf16;
    case 8: return DType::q8_0;
    case 2: return DType::q4_0;
    case 3: return DType::q4_1;
    default: return std::nullopt;
  }
}

}  // namespace

ModelWeights load_gguf_model(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2")
    throw ConfigError(path + ": general.architecture '" + arch +
                      "' unsupported, expected llama or qwen2");
  auto key = [&](const char* k) { return arch + "." + k; };

  ModelWeights w;
  w.source = path;
  ModelSpec& s = w.spec;
  s.name = path;
  s.architecture = arch;
  s.hidden_size = g.get_int(key("embedding_length"));
  s.num_layers = g.get_int(key("block_count"));
  s.intermediate_size = g.get_int(key("feed_forward_length"));
  s.num_heads = g.get_int(key("attention.head_count"));
  s.num_kv_heads = g.get_int(key("attention.head_count_kv"), s.num_heads);
  if (s.num_heads <= 0) throw ConfigError(path + ": " + key("attention.head_count") + " must be positive");
  s.head_dim = g.get_int(key("attention.key_length"), s.hidden_size / s.num_heads);
  if (g.get_int(key("attention.value_length"), s.head_dim) != s.head_dim)
    throw ConfigError(path + ": " + key("attention.value_length") + " differs from key_length");
  if (g.get_int(key("rope.dimension_count"), s.head_dim) != s.head_dim)
    throw ConfigError(path + ": " + key("rope.dimension_count") + " " +
                      std::to_string(g.get_int(key("rope.dimension_count"))) +
                      ", expected head_dim " + std::to_string(s.head_dim) + " (partial RoPE unsupported)");
  s.max_position_embeddings = g.get_int(key("context_length"), 0);
  s.rope_theta = g.get_float(key("rope.freq_base"), 10000.0);
  s.rms_norm_eps = g.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
  const std::string scaling = g.get_string(key("rope.scaling.type"), "none");
  if (scaling != "none")
    throw ConfigError(path + ": " + key("rope.scaling.type") + " '" + scaling +
                      "' unsupported, expected none (llama3 scaling comes as rope_freqs.weight)");
  s.bos_token_id = g.get_int("tokenizer.ggml.bos_token_id", -1);
  if (g.find("tokenizer.ggml.eos_token_id")) s.eos_token_ids = {g.get_int("tokenizer.ggml.eos_token_id")};

  const GgufTensor* emb = g.find_tensor("token_embd.weight");
  if (emb == nullptr || emb->dims.size() != 2)
    throw ConfigError(path + ": expected a 2-D tensor 'token_embd.weight' [hidden, vocab]");
  s.vocab_size = g.get_int(key("vocab_size"), emb->dims[1]);
  s.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  s.qkv_bias = g.find_tensor("blk.0.attn_q.bias") != nullptr;
  const GgufTensor* q0 = g.find_tensor("blk.0.attn_q.weight");
  if (auto dt = dtype_of(q0 != nullptr ? q0->type : emb->type)) s.dtype = *dt;
  check_supported(s, path);

  std::set<std::string> used;
  std::vector<float> tmp;
  // Loads `name`, whose ggml dims are the HF shape reversed ({in, out} for a matrix).
  auto take = [&](const std::string& name, std::vector<int64_t> dims, float* dst,
                  int64_t permute_heads = 0) {
    const GgufTensor* t = g.find_tensor(name);
    if (t == nullptr)
      throw ConfigError(path + ": missing tensor '" + name + "' with ggml dims " + dims_str(dims));
    if (t->dims != dims)
      throw ConfigError(path + ": tensor '" + name + "' has ggml dims " + dims_str(t->dims) +
                        ", expected " + dims_str(dims) + " from the metadata");
    g.dequantize_into(*t, dst);
    if (permute_heads > 0 && arch == "llama") unpermute_rows(dst, permute_heads, s.head_dim, dims[0], tmp);
    used.insert(name);
  };
  const int64_t H = s.hidden_size, V = s.vocab_size, I = s.intermediate_size;
  const int64_t QD = s.q_dim(), KD = s.kv_dim();
  size_weight_buffers(w);
  take("token_embd.weight", {H, V}, w.embed.data());
  for (int64_t l = 0; l < s.num_layers; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    take(p + "attn_norm.weight", {H}, L.attn_norm.data());
    take(p + "attn_q.weight", {H, QD}, L.wqkv.data(), s.num_heads);
    take(p + "attn_k.weight", {H, KD}, L.wqkv.data() + QD * H, s.num_kv_heads);
    take(p + "attn_v.weight", {H, KD}, L.wqkv.data() + (QD + KD) * H);
    if (s.qkv_bias) {
      L.bqkv.resize(static_cast<size_t>(QD + 2 * KD));
      take(p + "attn_q.bias", {QD}, L.bqkv.data());
      take(p + "attn_k.bias", {KD}, L.bqkv.data() + QD);
      take(p + "attn_v.bias", {KD}, L.bqkv.data() + QD + KD);
    }
    take(p + "attn_output.weight", {QD, H}, L.wo.data());
    take(p + "ffn_norm.weight", {H}, L.ffn_norm.data());
    take(p + "ffn_gate.weight", {H, I}, L.w_gate_up.data());
    take(p + "ffn_up.weight", {H, I}, L.w_gate_up.data() + I * H);
    take(p + "ffn_down.weight", {I, H}, L.w_down.data());
  }
  w.final_norm.resize(static_cast<size_t>(H));
  take("output_norm.weight", {H}, w.final_norm.data());
  if (!s.tie_word_embeddings) {
    w.lm_head.resize(static_cast<size_t>(V * H));
    take("output.weight", {H, V}, w.lm_head.data());
  }
  w.rope_inv_freq = rope_inv_freq(s);
  if (g.find_tensor("rope_freqs.weight") != nullptr) {
    // Llama 3.1 conversions store per-pair divisors of the base frequencies.
    std::vector<float> factors(w.rope_inv_freq.size());
    take("rope_freqs.weight", {static_cast<int64_t>(factors.size())}, factors.data());
    for (size_t i = 0; i < factors.size(); ++i) {
      if (!(factors[i] > 0.0f))
        throw ConfigError(path + ": rope_freqs.weight[" + std::to_string(i) + "] = " +
                          std::to_string(factors[i]) + ", expected a positive factor");
      w.rope_inv_freq[i] /= factors[i];
    }
  }
  for (const GgufTensor& t : g.tensors())
    if (!used.count(t.name))
      throw ConfigError(path + ": unexpected tensor '" + t.name + "' for architecture " + arch +
                        " with " + std::to_string(s.num_layers) + " layers");
  return w;
}

}  // namespace twinfer
