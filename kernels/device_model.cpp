// Loading weights onto the GPU: safetensors through the shared walker (so every check of the CPU
// loader applies), GGUF through the CPU loader's dequantization, presets drawn on the device.
#include "kernels/device_model.h"

#include <cstring>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/weights.h"

namespace twinfer::cuda {

namespace fs = std::filesystem;

namespace {

size_t align256(size_t n) { return (n + 255) & ~size_t{255}; }

// Narrows fp32 to bf16 on the host in slices and uploads them, so a multi-GB tensor never needs
// a second full-size host copy.
void upload_f32_as_bf16(const float* src, size_t n, bf16* dst) {
  constexpr size_t kSlice = size_t{1} << 22;
  std::vector<uint16_t> tmp(std::min(n, kSlice));
  for (size_t i = 0; i < n; i += kSlice) {
    const size_t m = std::min(kSlice, n - i);
    for (size_t k = 0; k < m; ++k) tmp[k] = twinfer::f32_to_bf16(src[i + k]);
    TWINFER_CUDA_CHECK(cudaMemcpy(dst + i, tmp.data(), m * 2, cudaMemcpyHostToDevice));
  }
}

void upload_tensor(const SafetensorsTensor& t, bf16* dst) {
  const size_t n = static_cast<size_t>(t.numel());
  if (t.dtype == "BF16") {
    TWINFER_CUDA_CHECK(cudaMemcpy(dst, t.data.data(), n * 2, cudaMemcpyHostToDevice));
    return;
  }
  std::vector<float> f(n);
  tensor_to_f32(t, f.data());
  upload_f32_as_bf16(f.data(), n, dst);
}

void fill_const(bf16* dst, size_t n, float v) {
  std::vector<uint16_t> h(n, twinfer::f32_to_bf16(v));
  TWINFER_CUDA_CHECK(cudaMemcpy(dst, h.data(), n * 2, cudaMemcpyHostToDevice));
}

}  // namespace

DeviceModel::~DeviceModel() {
  if (base_) cudaFree(base_);
}

DeviceModel::DeviceModel(DeviceModel&& o) noexcept { *this = std::move(o); }

DeviceModel& DeviceModel::operator=(DeviceModel&& o) noexcept {
  if (this != &o) {
    if (base_) cudaFree(base_);
    spec = std::move(o.spec);
    source = std::move(o.source);
    random = o.random;
    embed = o.embed;
    layers = std::move(o.layers);
    final_norm = o.final_norm;
    lm_head = o.lm_head;
    inv_freq = o.inv_freq;
    bytes = o.bytes;
    base_ = std::exchange(o.base_, nullptr);
  }
  return *this;
}

void DeviceModel::allocate() {
  const ModelSpec& s = spec;
  const size_t H = s.hidden_size, V = s.vocab_size, I = s.intermediate_size;
  const size_t QKV = s.q_dim() + 2 * s.kv_dim();
  // Offsets first, then one allocation: sizes are exact and the pool planner sees one number.
  size_t off = 0;
  auto take = [&](size_t elems, size_t esize = 2) {
    const size_t o = off;
    off += align256(elems * esize);
    return o;
  };
  const size_t o_embed = take(V * H);
  struct L { size_t an, qkv, b, wo, fn, gu, dn; };
  std::vector<L> lo(static_cast<size_t>(s.num_layers));
  for (auto& l : lo) {
    l.an = take(H);
    l.qkv = take(QKV * H);
    l.b = s.qkv_bias ? take(QKV) : SIZE_MAX;
    l.wo = take(H * s.q_dim());
    l.fn = take(H);
    l.gu = take(2 * I * H);
    l.dn = take(H * I);
  }
  const size_t o_fn = take(H);
  const size_t o_lm = s.tie_word_embeddings ? SIZE_MAX : take(V * H);
  const size_t o_inv = take(s.head_dim / 2, 4);
  bytes = off;
  const cudaError_t e = cudaMalloc(&base_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw ConfigError(source + ": weights need " + std::to_string(bytes >> 20) + " MiB in bf16 but the GPU has " +
                      std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                      " MiB: the model does not fit");
  }
  auto* b = static_cast<uint8_t*>(base_);
  auto at = [&](size_t o) { return o == SIZE_MAX ? nullptr : reinterpret_cast<bf16*>(b + o); };
  embed = at(o_embed);
  layers.resize(lo.size());
  for (size_t i = 0; i < lo.size(); ++i)
    layers[i] = {at(lo[i].an), at(lo[i].qkv), at(lo[i].b), at(lo[i].wo), at(lo[i].fn), at(lo[i].gu), at(lo[i].dn)};
  final_norm = at(o_fn);
  lm_head = s.tie_word_embeddings ? embed : at(o_lm);
  inv_freq = reinterpret_cast<float*>(b + o_inv);
}

DeviceModel DeviceModel::load(const std::string& path, uint64_t seed) {
  DeviceModel m;
  m.source = path;
  if (path.ends_with(".gguf")) {
    ModelWeights w = load_gguf_model(path);
    m.spec = w.spec;
    m.allocate();
    const size_t H = m.spec.hidden_size;
    upload_f32_as_bf16(w.embed.data(), w.embed.size(), m.embed);
    for (size_t l = 0; l < w.layers.size(); ++l) {
      const LayerWeights& L = w.layers[l];
      DeviceLayer& D = m.layers[l];
      upload_f32_as_bf16(L.attn_norm.data(), H, D.attn_norm);
      upload_f32_as_bf16(L.wqkv.data(), L.wqkv.size(), D.wqkv);
      if (D.bqkv) upload_f32_as_bf16(L.bqkv.data(), L.bqkv.size(), D.bqkv);
      upload_f32_as_bf16(L.wo.data(), L.wo.size(), D.wo);
      upload_f32_as_bf16(L.ffn_norm.data(), H, D.ffn_norm);
      upload_f32_as_bf16(L.w_gate_up.data(), L.w_gate_up.size(), D.w_gate_up);
      upload_f32_as_bf16(L.w_down.data(), L.w_down.size(), D.w_down);
    }
    upload_f32_as_bf16(w.final_norm.data(), H, m.final_norm);
    if (!m.spec.tie_word_embeddings) upload_f32_as_bf16(w.lm_head.data(), w.lm_head.size(), m.lm_head);
    TWINFER_CUDA_CHECK(cudaMemcpy(m.inv_freq, w.rope_inv_freq.data(), w.rope_inv_freq.size() * 4,
                                  cudaMemcpyHostToDevice));
    return m;
  }
  if (fs::is_directory(path)) {
    visit_safetensors_model(
        path,
        [&](const ModelSpec& s) {
          m.spec = s;
          m.allocate();
        },
        [&](const SafetensorsTensor& t, const std::string&, const WeightDest& d) {
          DeviceLayer* L = d.layer >= 0 ? &m.layers[static_cast<size_t>(d.layer)] : nullptr;
          bf16* base = nullptr;
          switch (d.role) {
            case WeightRole::embed: base = m.embed; break;
            case WeightRole::attn_norm: base = L->attn_norm; break;
            case WeightRole::wqkv: base = L->wqkv; break;
            case WeightRole::bqkv: base = L->bqkv; break;
            case WeightRole::wo: base = L->wo; break;
            case WeightRole::ffn_norm: base = L->ffn_norm; break;
            case WeightRole::w_gate_up: base = L->w_gate_up; break;
            case WeightRole::w_down: base = L->w_down; break;
            case WeightRole::final_norm: base = m.final_norm; break;
            case WeightRole::lm_head: base = m.lm_head; break;
          }
          upload_tensor(t, base + d.offset);
        });
    const std::vector<float> inv = rope_inv_freq(m.spec);
    TWINFER_CUDA_CHECK(cudaMemcpy(m.inv_freq, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    return m;
  }
  // A preset (or a config.json path): random weights drawn on the device.
  m.spec = resolve_model(path);
  check_supported(m.spec, path);
  m.random = true;
  m.allocate();
  const ModelSpec& s = m.spec;
  const size_t H = s.hidden_size, I = s.intermediate_size, QKV = s.q_dim() + 2 * s.kv_dim();
  uint64_t k = seed * 0x9e3779b97f4a7c15ULL + 1;
  auto normal = [&](bf16* p, size_t n) { fill_normal(p, n, 0.02f, k++, nullptr); };
  normal(m.embed, s.vocab_size * H);
  for (DeviceLayer& D : m.layers) {
    fill_const(D.attn_norm, H, 1.0f);
    normal(D.wqkv, QKV * H);
    if (D.bqkv) normal(D.bqkv, QKV);
    normal(D.wo, H * s.q_dim());
    fill_const(D.ffn_norm, H, 1.0f);
    normal(D.w_gate_up, 2 * I * H);
    normal(D.w_down, H * I);
  }
  fill_const(m.final_norm, H, 1.0f);
  if (!s.tie_word_embeddings) normal(m.lm_head, s.vocab_size * H);
  const std::vector<float> inv = rope_inv_freq(s);
  TWINFER_CUDA_CHECK(cudaMemcpy(m.inv_freq, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  return m;
}

}  // namespace twinfer::cuda
