#include "core/cpu_forward.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace twinfer::cpu {

namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
using StridedConst = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using Vec = Eigen::Matrix<float, 1, Eigen::Dynamic>;

template <class T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}
}  // namespace

void linear(const float* x, int64_t T, int64_t in, const float* W, int64_t out, const float* b,
            float* y) {
  if (T == 0) return;
  Eigen::Map<const RowMat> X(x, T, in);
  Eigen::Map<const RowMat> Wm(W, out, in);
  Eigen::Map<RowMat> Y(y, T, out);
  Y.noalias() = X * Wm.transpose();
  if (b != nullptr) Y.rowwise() += Eigen::Map<const Vec>(b, out);
}

void rms_norm(const float* x, int64_t T, int64_t H, const float* w, float eps, float* y) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * H;
    float* yr = y + t * H;
    float ss = 0.0f;
    for (int64_t i = 0; i < H; ++i) ss += xr[i] * xr[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(H) + eps);
    for (int64_t i = 0; i < H; ++i) yr[i] = w[i] * (xr[i] * r);
  }
}

void rope_tables(std::span<const int32_t> positions, std::span<const float> inv_freq, float* cos,
                 float* sin) {
  const size_t half = inv_freq.size();
  for (size_t t = 0; t < positions.size(); ++t) {
    const float p = static_cast<float>(positions[t]);
    for (size_t i = 0; i < half; ++i) {
      // The angle is formed in fp32 as transformers does (position * inv_freq).
      const float a = p * inv_freq[i];
      cos[t * half + i] = std::cos(a);
      sin[t * half + i] = std::sin(a);
    }
  }
}

void apply_rope(float* x, int64_t T, int64_t stride, int64_t n_heads, int64_t head_dim,
                const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < T; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + t * stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void swiglu(const float* gu, int64_t T, int64_t I, float* out) {
  for (int64_t t = 0; t < T; ++t) {
    const float* g = gu + t * 2 * I;
    const float* u = g + I;
    float* o = out + t * I;
    for (int64_t i = 0; i < I; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void attention(const ModelSpec& s, const float* q, int64_t q_stride, int64_t n, int64_t first_pos,
               const float* K, const float* V, float* out, int64_t out_stride,
               std::vector<float>& scores) {
  const int64_t hd = s.head_dim, kvd = s.kv_dim(), ctx = first_pos + n;
  const int64_t group = s.num_heads / s.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  grow(scores, static_cast<size_t>(n * ctx));
  Eigen::Map<RowMat> S(scores.data(), n, ctx);
  for (int64_t h = 0; h < s.num_heads; ++h) {
    const int64_t g = h / group;
    StridedConst Q(q + h * hd, n, hd, Eigen::OuterStride<>(q_stride));
    StridedConst Kg(K + g * hd, ctx, hd, Eigen::OuterStride<>(kvd));
    StridedConst Vg(V + g * hd, ctx, hd, Eigen::OuterStride<>(kvd));
    S.noalias() = Q * Kg.transpose();
    for (int64_t r = 0; r < n; ++r) {
      // Row r sits at position first_pos + r and sees keys up to and including itself.
      const int64_t lim = first_pos + r + 1;
      float* row = scores.data() + r * ctx;
      float mx = -INFINITY;
      for (int64_t j = 0; j < lim; ++j) {
        row[j] *= scale;
        mx = std::max(mx, row[j]);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < lim; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < lim; ++j) row[j] *= inv;
      std::fill(row + lim, row + ctx, 0.0f);
    }
    Strided O(out + h * hd, n, hd, Eigen::OuterStride<>(out_stride));
    O.noalias() = S * Vg;
  }
}

void Scratch::resize(const ModelSpec& s, int64_t T) {
  const auto n = static_cast<size_t>(T);
  const auto H = static_cast<size_t>(s.hidden_size);
  const auto I = static_cast<size_t>(s.intermediate_size);
  const auto half = static_cast<size_t>(s.head_dim / 2);
  grow(x, n * H);
  grow(h, n * H);
  grow(qkv, n * static_cast<size_t>(s.q_dim() + 2 * s.kv_dim()));
  grow(attn, n * static_cast<size_t>(s.q_dim()));
  grow(gu, n * 2 * I);
  grow(act, n * I);
  grow(cos, n * half);
  grow(sin, n * half);
}

void layer_qkv(const ModelWeights& w, const LayerWeights& L, int64_t T, Scratch& sc) {
  const ModelSpec& s = w.spec;
  const int64_t H = s.hidden_size, QKV = s.q_dim() + 2 * s.kv_dim();
  const auto eps = static_cast<float>(s.rms_norm_eps);
  rms_norm(sc.x.data(), T, H, L.attn_norm.data(), eps, sc.h.data());
  linear(sc.h.data(), T, H, L.wqkv.data(), QKV, L.bqkv.empty() ? nullptr : L.bqkv.data(),
         sc.qkv.data());
  apply_rope(sc.qkv.data(), T, QKV, s.num_heads, s.head_dim, sc.cos.data(), sc.sin.data());
  apply_rope(sc.qkv.data() + s.q_dim(), T, QKV, s.num_kv_heads, s.head_dim, sc.cos.data(),
             sc.sin.data());
}

void layer_out(const ModelWeights& w, const LayerWeights& L, int64_t T, Scratch& sc) {
  const ModelSpec& s = w.spec;
  const int64_t H = s.hidden_size, I = s.intermediate_size;
  const auto eps = static_cast<float>(s.rms_norm_eps);
  Eigen::Map<RowMat> X(sc.x.data(), T, H);
  Eigen::Map<const RowMat> A(sc.attn.data(), T, s.q_dim());
  Eigen::Map<const RowMat> Wo(L.wo.data(), H, s.q_dim());
  X.noalias() += A * Wo.transpose();
  rms_norm(sc.x.data(), T, H, L.ffn_norm.data(), eps, sc.h.data());
  linear(sc.h.data(), T, H, L.w_gate_up.data(), 2 * I, nullptr, sc.gu.data());
  swiglu(sc.gu.data(), T, I, sc.act.data());
  Eigen::Map<const RowMat> Act(sc.act.data(), T, I);
  Eigen::Map<const RowMat> Wd(L.w_down.data(), H, I);
  X.noalias() += Act * Wd.transpose();
}

}  // namespace twinfer::cpu
