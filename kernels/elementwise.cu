// Row-wise and elementwise kernels of the forward pass: embedding gather, RMSNorm (plain and
// fused with the residual add), SiLU-and-multiply, plus the fill/convert utilities.
//
// Rounding follows Hugging Face's bf16 forward exactly where it rounds: LlamaRMSNorm normalises
// in fp32, rounds the normalised row to bf16, then multiplies by the bf16 weight (one more
// rounding); the residual add and the MLP's act(gate) * up each round to bf16 after every op.
#include <cuda_bf16.h>

#include <cstdint>
#include <string>

#include "kernels/bf16_vec.cuh"
#include "kernels/ops.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda {
namespace {

constexpr int kVec = 8;  // bf16 per 16-byte vector

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void require(bool ok, const char* kernel, const std::string& what) {
  if (!ok) throw CudaError(std::string(kernel) + ": " + what);
}

// Sum over the block; every thread gets the result. blockDim.x is a multiple of 32, <= 1024.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x / 32;
  float s = lane < nwarps ? partial[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

// ---- embed ---------------------------------------------------------------------------------
// grid (T), block: copies row ids[t] of table [vocab, H] into out [T, H].
template <bool kVectorized>
__global__ void kernel_embed(const bf16* __restrict__ table, const int32_t* __restrict__ ids, int H,
                             bf16* __restrict__ out) {
  pdl_trigger();
  pdl_wait();  // ids and table may be the previous kernel's output (the lm_head row gather)
  const int t = blockIdx.x;
  const bf16* src = table + int64_t(ids[t]) * H;
  bf16* dst = out + int64_t(t) * H;
  if constexpr (kVectorized) {
    const uint4* s4 = reinterpret_cast<const uint4*>(src);
    uint4* d4 = reinterpret_cast<uint4*>(dst);
    for (int i = threadIdx.x; i < H / kVec; i += blockDim.x) d4[i] = s4[i];
  } else {
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = src[i];
  }
}

// ---- RMSNorm -------------------------------------------------------------------------------
// grid (T), block (threads, multiple of 32). Row t of x [T, H] -> out [T, H]. With kAdd, x is
// the residual: residual = bf16(residual + delta) is stored back first and the rounded sum is
// normalised. Each thread re-reads in pass 2 exactly the elements it wrote in pass 1, so the
// residual store needs no fence.
template <bool kVectorized, bool kAdd>
__global__ void kernel_rms_norm(bf16* __restrict__ x, const bf16* __restrict__ delta,
                                const bf16* __restrict__ w, int H, float eps,
                                bf16* __restrict__ out) {
  pdl_trigger();
  pdl_wait();
  const int64_t row = int64_t(blockIdx.x) * H;
  bf16* xr = x + row;
  bf16* orow = out + row;
  float ss = 0.f;
  if constexpr (kVectorized) {
    uint4* x4 = reinterpret_cast<uint4*>(xr);
    for (int i = threadIdx.x; i < H / kVec; i += blockDim.x) {
      float f[8];
      unpack8(x4[i], f);
      if constexpr (kAdd) {
        float d[8];
        unpack8(reinterpret_cast<const uint4*>(delta + row)[i], d);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = round_bf16(f[j] + d[j]);
        x4[i] = pack8(f);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
    }
  } else {
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
      float f = __bfloat162float(xr[i]);
      if constexpr (kAdd) {
        f = round_bf16(f + __bfloat162float(delta[row + i]));
        xr[i] = __float2bfloat16(f);
      }
      ss += f * f;
    }
  }
  const float inv = rsqrtf(block_sum(ss) / float(H) + eps);
  if constexpr (kVectorized) {
    const uint4* x4 = reinterpret_cast<const uint4*>(xr);
    const uint4* w4 = reinterpret_cast<const uint4*>(w);
    uint4* o4 = reinterpret_cast<uint4*>(orow);
    for (int i = threadIdx.x; i < H / kVec; i += blockDim.x) {
      float f[8], g[8];
      unpack8(x4[i], f);
      unpack8(w4[i], g);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = g[j] * round_bf16(f[j] * inv);
      o4[i] = pack8(f);
    }
  } else {
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
      const float n = round_bf16(__bfloat162float(xr[i]) * inv);
      orow[i] = __float2bfloat16(__bfloat162float(w[i]) * n);
    }
  }
}

int row_threads(int work_items) {
  int th = (work_items + 31) / 32 * 32;
  if (th < 32) th = 32;
  if (th > 256) th = 256;
  return th;
}

void launch_norm(bf16* x, const bf16* delta, const bf16* w, int T, int H, float eps, bf16* out,
                 cudaStream_t s, bool add, const char* name) {
  require(T >= 0 && H > 0, name, "T must be >= 0 and H > 0, got T=" + std::to_string(T) +
                                     " H=" + std::to_string(H));
  require(eps >= 0.f, name, "eps must be >= 0");
  if (T == 0) return;
  const bool vec = H % kVec == 0 && aligned16(x) && aligned16(w) && aligned16(out) &&
                   (!add || aligned16(delta));
  const int th = row_threads(vec ? H / kVec : H);
  const bf16* d = add ? delta : nullptr;
  void (*k)(bf16*, const bf16*, const bf16*, int, float, bf16*) =
      add ? (vec ? kernel_rms_norm<true, true> : kernel_rms_norm<false, true>)
          : (vec ? kernel_rms_norm<true, false> : kernel_rms_norm<false, false>);
  launch_pdl(name, k, T, th, 0, s, x, d, w, H, eps, out);
}

// ---- SiLU * up -----------------------------------------------------------------------------
// gu [T, 2I] -> out [T, I]; HF rounds silu(gate) to bf16, then the product.
__device__ __forceinline__ float silu_mul1(float g, float u) {
  return round_bf16(g / (1.f + expf(-g))) * u;  // full-precision exp: bandwidth-bound anyway
}
__global__ void kernel_silu_mul_vec(const bf16* __restrict__ gu, int64_t T, int I,
                                    bf16* __restrict__ out) {
  pdl_trigger();
  pdl_wait();
  const int iv = I / kVec;  // vectors per output row
  const int64_t n = T * iv;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n;
       v += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = v / iv;
    const int j = int(v - t * iv);
    const uint4* row = reinterpret_cast<const uint4*>(gu + t * 2 * I);
    float g[8], u[8];
    unpack8(row[j], g);
    unpack8(row[iv + j], u);
#pragma unroll
    for (int k = 0; k < 8; ++k) g[k] = silu_mul1(g[k], u[k]);
    reinterpret_cast<uint4*>(out + t * I)[j] = pack8(g);
  }
}
__global__ void kernel_silu_mul_scalar(const bf16* __restrict__ gu, int64_t T, int I,
                                       bf16* __restrict__ out) {
  pdl_trigger();
  pdl_wait();
  const int64_t n = T * I;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = e / I;
    const int64_t i = e - t * I;
    const bf16* row = gu + t * 2 * I;
    out[e] = __float2bfloat16(silu_mul1(__bfloat162float(row[i]), __bfloat162float(row[I + i])));
  }
}

// Grid for a grid-stride loop over n items: enough blocks to fill the GPU several times over,
// bounded so the launch stays legal for any n.
int stride_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 132 * 32) b = 132 * 32;
  return int(b);
}

// ---- utilities -----------------------------------------------------------------------------
// splitmix64 finaliser: a bijective mix, so distinct (seed, counter) pairs give independent-
// looking 64-bit words without any state.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Pair p of outputs (2p, 2p+1) comes from one Box-Muller draw keyed by (seed, p), so the
// result for any index depends on nothing but seed and index.
__global__ void kernel_fill_normal(bf16* __restrict__ x, uint64_t n, float stddev, uint64_t seed) {
  const uint64_t pairs = (n + 1) / 2;
  const uint64_t key = mix64(seed ^ 0x6A09E667F3BCC909ull);
  for (uint64_t p = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; p < pairs;
       p += uint64_t(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(key + (p + 1) * 0x9E3779B97F4A7C15ull);
    // u1 in (0, 1] keeps log finite; u2 in [0, 1). 24 bits each: exact in fp32.
    const float u1 = (float((h >> 40) & 0xFFFFFFu) + 1.f) * (1.f / 16777216.f);
    const float u2 = float((h >> 8) & 0xFFFFFFu) * (1.f / 16777216.f);
    const float r = sqrtf(-2.f * logf(u1)) * stddev;
    float sn, cs;
    sincospif(2.f * u2, &sn, &cs);
    x[2 * p] = __float2bfloat16(r * cs);
    if (2 * p + 1 < n) x[2 * p + 1] = __float2bfloat16(r * sn);
  }
}

__global__ void kernel_f32_to_bf16(const float* __restrict__ x, uint64_t n, bf16* __restrict__ y) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += uint64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(x[i]);
}
__global__ void kernel_bf16_to_f32(const bf16* __restrict__ x, uint64_t n, float* __restrict__ y) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += uint64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

}  // namespace

void embed(const bf16* table, const int32_t* ids, int T, int H, bf16* out, cudaStream_t s) {
  require(T >= 0 && H > 0, "embed", "T must be >= 0 and H > 0, got T=" + std::to_string(T) +
                                        " H=" + std::to_string(H));
  if (T == 0) return;
  const bool vec = H % kVec == 0 && aligned16(table) && aligned16(out);
  const int th = row_threads(vec ? H / kVec : H);
  launch_pdl("kernel_embed", vec ? kernel_embed<true> : kernel_embed<false>, T, th, 0, s, table,
             ids, H, out);
}

void rms_norm(const bf16* x, const bf16* w, int T, int H, float eps, bf16* out, cudaStream_t s) {
  // The kernel only writes x when fusing the add; the cast keeps one kernel for both.
  launch_norm(const_cast<bf16*>(x), nullptr, w, T, H, eps, out, s, false, "kernel_rms_norm");
}

void add_rms_norm(bf16* residual, const bf16* delta, const bf16* w, int T, int H, float eps,
                  bf16* out, cudaStream_t s) {
  launch_norm(residual, delta, w, T, H, eps, out, s, true, "kernel_add_rms_norm");
}

void silu_mul(const bf16* gu, int T, int I, bf16* out, cudaStream_t s) {
  require(T >= 0 && I > 0, "silu_mul", "T must be >= 0 and I > 0, got T=" + std::to_string(T) +
                                           " I=" + std::to_string(I));
  if (T == 0) return;
  constexpr int th = 256;
  if (I % kVec == 0 && aligned16(gu) && aligned16(out)) {
    launch_pdl("kernel_silu_mul", kernel_silu_mul_vec, stride_blocks(int64_t(T) * (I / kVec), th), th,
               0, s, gu, int64_t(T), I, out);
  } else {
    launch_pdl("kernel_silu_mul", kernel_silu_mul_scalar, stride_blocks(int64_t(T) * I, th), th, 0,
               s, gu, int64_t(T), I, out);
  }
}

void fill_normal(bf16* x, size_t n, float std, uint64_t seed, cudaStream_t s) {
  if (n == 0) return;
  constexpr int th = 256;
  kernel_fill_normal<<<stride_blocks(int64_t((n + 1) / 2), th), th, 0, s>>>(x, n, std, seed);
  check_launch("kernel_fill_normal");
}

void f32_to_bf16(const float* x, size_t n, bf16* y, cudaStream_t s) {
  if (n == 0) return;
  constexpr int th = 256;
  kernel_f32_to_bf16<<<stride_blocks(int64_t(n), th), th, 0, s>>>(x, n, y);
  check_launch("kernel_f32_to_bf16");
}

void bf16_to_f32(const bf16* x, size_t n, float* y, cudaStream_t s) {
  if (n == 0) return;
  constexpr int th = 256;
  kernel_bf16_to_f32<<<stride_blocks(int64_t(n), th), th, 0, s>>>(x, n, y);
  check_launch("kernel_bf16_to_f32");
}

}  // namespace twinfer::cuda
