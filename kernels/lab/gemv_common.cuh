// Device code shared by the GEMV lab versions that must give the same bits per output row (v2,
// v3): the per-16-byte-vector FMA step, the fused RMSNorm's 1/rms, and the epilogue. A row's
// fp32 sum is accumulated lane by lane over vectors v = lane, lane + 32, ... in increasing order
// and then butterfly-reduced, whichever version streams W.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/bf16_vec.cuh"
#include "kernels/lab/gemv_lab.h"

namespace twinfer::cuda::lab {

template <class OutT>
__device__ __forceinline__ OutT to_out(float v);
template <>
__device__ __forceinline__ bf16 to_out<bf16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ float to_out<float>(float v) { return v; }

// acc[r][t] += W row r's vector v . x row t's vector v (kNorm: x normalized as rms_norm rounds it).
template <int T, int R, bool kNorm>
__device__ __forceinline__ void gemv_fma_vec(const uint4 (&w)[R], const bf16* __restrict__ x, int in,
                                             int v, const GemvFusion& fz, const float (&inv)[T],
                                             float (&acc)[R][T]) {
  float wf[R][8];
#pragma unroll
  for (int r = 0; r < R; ++r) unpack8(w[r], wf[r]);
  float g[8];
  if constexpr (kNorm) unpack8(__ldg(reinterpret_cast<const uint4*>(fz.norm_w) + v), g);
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float xf[8];
    unpack8(__ldg(reinterpret_cast<const uint4*>(x + int64_t(t) * in) + v), xf);
    if constexpr (kNorm) {
#pragma unroll
      for (int j = 0; j < 8; ++j) xf[j] = round_bf16(g[j] * round_bf16(xf[j] * inv[t]));
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[r][t] = fmaf(wf[r][j], xf[j], acc[r][t]);
  }
}

// The fused RMSNorm's sum of squares is always split over this many threads (4 warps), whatever
// the block size, so every version and block size rounds 1/rms the same way and gives the same
// bits per output row.
constexpr int kNormThreads = 128;

// Fused RMSNorm, step 1: threads tid < kNormThreads sum squares of x rows over vectors tid,
// tid + kNormThreads, .. into s_ss[warp][t] (warps 0..3); other threads do nothing. The caller
// syncs the block (or at least warps 0..3), then calls gemv_norm_inv.
template <int T>
__device__ __forceinline__ void gemv_norm_partials(const bf16* __restrict__ x, int in, int tid,
                                                   float (*s_ss)[T]) {
  if (tid >= kNormThreads) return;
  constexpr int nthreads = kNormThreads;
  const int nvec = in / 8;
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float ss = 0.f;
    for (int v = tid; v < nvec; v += nthreads) {
      float f[8];
      unpack8(__ldg(reinterpret_cast<const uint4*>(x + int64_t(t) * in) + v), f);
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (tid % 32 == 0) s_ss[tid / 32][t] = ss;
  }
}
template <int T>
__device__ __forceinline__ void gemv_norm_inv(const float (*s_ss)[T], int in, float eps,
                                              float (&inv)[T]) {
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < kNormThreads / 32; ++k) ss += s_ss[k][t];
    inv[t] = rsqrtf(ss / float(in) + eps);
  }
}

// Butterfly-reduces acc and stores the warp's RO output columns (rows row0 .. row0 + RO - 1).
template <int T, int R, int RO, bool kGateUp, bool kAdd, class OutT>
__device__ __forceinline__ void gemv_store(float (&acc)[R][T], int lane, int row0, int out,
                                           OutT* __restrict__ y) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], o);
  // After the butterfly every lane holds every sum; lane (r * T + t) % 32 stores (r, t).
#pragma unroll
  for (int r = 0; r < RO; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) {
      if (lane != (r * T + t) % 32 || row0 + r >= out) continue;
      if constexpr (kGateUp) {
        // Same expression as silu_mul (kernels/elementwise.cu): full-precision expf.
        const float g = round_bf16(acc[r][t]), u = round_bf16(acc[r + RO][t]);
        y[int64_t(t) * out + row0 + r] = __float2bfloat16(round_bf16(g / (1.f + expf(-g))) * u);
      } else if constexpr (kAdd) {
        // residual = bf16(residual + bf16(acc)): the rounding of a separate projection output
        // followed by add_rms_norm's add.
        OutT* p = y + int64_t(t) * out + row0 + r;
        *p = __float2bfloat16(__bfloat162float(*p) + round_bf16(acc[r][t]));
      } else {
        y[int64_t(t) * out + row0 + r] = to_out<OutT>(acc[r][t]);
      }
    }
}

}  // namespace twinfer::cuda::lab
