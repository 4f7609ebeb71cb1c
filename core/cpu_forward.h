// Building blocks of the Llama-family forward pass on the CPU (fp32, Eigen GEMMs), shared by the
// dense reference (forward_logits) and the paged CpuExecutor. Activations are row-major
// [tokens, features]; every function writes into caller-owned buffers so a step allocates
// nothing once its buffers have grown.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/weights.h"

namespace twinfer::cpu {

// y[T, out] = x[T, in] W^T (+ b), W row-major [out, in] as in Hugging Face's nn.Linear.
void linear(const float* x, int64_t T, int64_t in, const float* W, int64_t out, const float* b,
            float* y);
// y[T, H] = x / sqrt(mean(x^2) + eps) * w, per row.
void rms_norm(const float* x, int64_t T, int64_t H, const float* w, float eps, float* y);
// cos/sin tables [T, head_dim / 2] for the given positions.
void rope_tables(std::span<const int32_t> positions, std::span<const float> inv_freq, float* cos,
                 float* sin);
// Rotates `n_heads` heads of each row in place (rotate-half convention: pair i with
// i + head_dim / 2, as Hugging Face's apply_rotary_pos_emb). Rows are `stride` floats apart.
void apply_rope(float* x, int64_t T, int64_t stride, int64_t n_heads, int64_t head_dim,
                const float* cos, const float* sin);
// out[T, I] = silu(gu[:, :I]) * gu[:, I:], gu is [T, 2I].
void swiglu(const float* gu, int64_t T, int64_t I, float* out);

// Causal GQA attention of `n` query rows at positions first_pos .. first_pos + n - 1 over keys
// 0 .. first_pos + n - 1. q rows are q_stride floats apart ([n, num_heads * head_dim] at the
// start of each row); K and V are contiguous [ctx, kv_dim]; out rows are out_stride apart.
// `scores` is scratch, resized as needed.
void attention(const ModelSpec& s, const float* q, int64_t q_stride, int64_t n, int64_t first_pos,
               const float* K, const float* V, float* out, int64_t out_stride,
               std::vector<float>& scores);

// Per-step activation buffers, grown on demand and reused across steps.
struct Scratch {
  std::vector<float> x, h, qkv, attn, gu, act, cos, sin, scores;
  void resize(const ModelSpec& s, int64_t T);
};

// The parts of one decoder layer around attention:
// before: h = norm(x); qkv = h Wqkv^T + b; RoPE on q and k at `positions` (tables in scratch).
void layer_qkv(const ModelWeights& w, const LayerWeights& L, int64_t T, Scratch& sc);
// after: x += attn Wo^T; x += down(swiglu(norm(x) Wgu^T)).
void layer_out(const ModelWeights& w, const LayerWeights& L, int64_t T, Scratch& sc);

}  // namespace twinfer::cpu
