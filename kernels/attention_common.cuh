// Device helpers shared by the paged attention kernels (decode, prefill, lab versions): loads of
// KV vectors from bf16 or fp8 e4m3 storage into fp32 (fp8: value = stored * scale), the cache
// addressing of a logical token through the block table, and warp reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/bf16_vec.cuh"
#include "kernels/ops.h"

namespace twinfer::cuda::attn {

using fp8 = __nv_fp8_e4m3;

// Element offset of (token t of a sequence, kv head h, dim 0) in a pool laid out
// [num_blocks, block_size, n_kv_heads, head_dim]; `table` is the sequence's block-table row.
__device__ __forceinline__ int64_t kv_offset(const int32_t* table, int t, int block_size,
                                             int n_kv_heads, int h, int head_dim) {
  const int64_t block = table[t / block_size];
  const int64_t slot = block * block_size + (t % block_size);
  return (slot * n_kv_heads + h) * head_dim;
}

// Converts 8 bf16 packed in a uint4 to fp32 (the shared unpack8).
__device__ __forceinline__ void bf16x8_to_f32(const uint4& u, float* out) { unpack8(u, out); }

// Converts 4 fp8 e4m3 packed in a uint32 to fp32 (unscaled), lowest byte first.
__device__ __forceinline__ void fp8x4_to_f32(uint32_t w, float* out) {
  const __nv_fp8x2_storage_t lo = static_cast<__nv_fp8x2_storage_t>(w & 0xFFFFu);
  const __nv_fp8x2_storage_t hi = static_cast<__nv_fp8x2_storage_t>(w >> 16);
  const __half2_raw a = __nv_cvt_fp8x2_to_halfraw2(lo, __NV_E4M3);
  const __half2_raw b = __nv_cvt_fp8x2_to_halfraw2(hi, __NV_E4M3);
  const float2 fa = __half22float2(__half2(a));
  const float2 fb = __half22float2(__half2(b));
  out[0] = fa.x;
  out[1] = fa.y;
  out[2] = fb.x;
  out[3] = fb.y;
}

// One vector of the cache as the decode kernel loads it: 8 elements, i.e. 16 bytes of bf16 or 8
// bytes of fp8. fp8 takes 8 (not 16) values per lane so a lane's q and accumulators stay the size
// they are for bf16: with 16, the GM = 4 kernel needed 128 registers and half the occupancy, and
// ran below bf16's speed while reading half the bytes. VEC = elements per vector.
template <class T>
struct KvVec;
template <>
struct KvVec<bf16> {
  static constexpr int VEC = 8;
  using Raw = uint4;
  __device__ __forceinline__ static Raw zero() { return make_uint4(0, 0, 0, 0); }
  // p must be 16-byte aligned (launchers check head_dim % 8 == 0 and the pool pointers).
  __device__ __forceinline__ static Raw load(const bf16* p) {
    return __ldg(reinterpret_cast<const uint4*>(p));
  }
  __device__ __forceinline__ static void to_f32(const Raw& u, float* out) { bf16x8_to_f32(u, out); }
};
template <>
struct KvVec<fp8> {
  static constexpr int VEC = 8;
  using Raw = uint2;
  __device__ __forceinline__ static Raw zero() { return make_uint2(0, 0); }
  __device__ __forceinline__ static Raw load(const fp8* p) {
    return __ldg(reinterpret_cast<const uint2*>(p));
  }
  __device__ __forceinline__ static void to_f32(const Raw& u, float* out) {
    fp8x4_to_f32(u.x, out);
    fp8x4_to_f32(u.y, out + 4);
  }
};

// Scalar element load as fp32 (unscaled), for the simple lab kernels.
__device__ __forceinline__ float load_f32(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load_f32(const fp8* p) { return float(*p); }

template <int WIDTH>
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = WIDTH / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <int WIDTH>
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = WIDTH / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Split-K decode, pass 2: for each of GM heads (one warp per head), the exact max and sum of
// exp over the partition's n logits in s_p, which become the unnormalized probabilities.
template <int GM, int kP, int kWarps>
__device__ __forceinline__ void partition_softmax(float (&s_p)[GM][kP], int n, float* s_m,
                                                  float* s_l, int warp, int lane) {
  for (int g = warp; g < GM; g += kWarps) {
    float m = -INFINITY;
    for (int t = lane; t < n; t += 32) m = fmaxf(m, s_p[g][t]);
    m = warp_max<32>(m);
    float sum = 0.f;
    for (int t = lane; t < n; t += 32) {
      const float e = __expf(s_p[g][t] - m);
      s_p[g][t] = e;
      sum += e;
    }
    sum = warp_sum<32>(sum);
    if (lane == 0) {
      s_m[g] = m;
      s_l[g] = sum;
    }
  }
}

// Split-K decode, pass 3 for one batch of N V vectors in registers: vv[u] is token
// t0 + u * stride (this lane's 8 dims of it); acc[g][:] += p[g][t] v[t][:] for every token < n.
template <class T, int GM, int kP, int N>
__device__ __forceinline__ void accumulate_pv(const typename KvVec<T>::Raw (&vv)[N],
                                              const float (&s_p)[GM][kP], int t0, int stride, int n,
                                              float (&acc)[GM][KvVec<T>::VEC]) {
#pragma unroll
  for (int u = 0; u < N; ++u) {
    const int t = t0 + u * stride;
    if (t < n) {
      float vf[KvVec<T>::VEC];
      KvVec<T>::to_f32(vv[u], vf);
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        const float p = s_p[g][t];
#pragma unroll
        for (int v = 0; v < KvVec<T>::VEC; ++v) acc[g][v] = fmaf(p, vf[v], acc[g][v]);
      }
    }
  }
}

// Split-K decode, end of pass 3: lanes with the same l (of LPT lanes per token) hold the same
// dims for different tokens, so acc is summed over lane offsets >= LPT, then across warps into
// s_out (zeroed by the caller).
template <int GM, int VEC, int LPT, int D>
__device__ __forceinline__ void reduce_acc_to_smem(float (&acc)[GM][VEC], float (&s_out)[GM][D],
                                                   int lane) {
#pragma unroll
  for (int g = 0; g < GM; ++g)
#pragma unroll
    for (int v = 0; v < VEC; ++v)
#pragma unroll
      for (int o = LPT; o < 32; o <<= 1) acc[g][v] += __shfl_xor_sync(0xffffffffu, acc[g][v], o);
  if (lane / LPT == 0)
#pragma unroll
    for (int g = 0; g < GM; ++g)
#pragma unroll
      for (int v = 0; v < VEC; ++v) atomicAdd(&s_out[g][(lane % LPT) * VEC + v], acc[g][v]);
}

// The KV scale to apply: 1 for bf16, *scale_ptr for fp8.
__device__ __forceinline__ float kv_scale(const float* p, KvDtype dt) {
  return dt == KvDtype::fp8_e4m3 ? __ldg(p) : 1.0f;
}

}  // namespace twinfer::cuda::attn

namespace twinfer::cuda::attn {

// Host-side checks shared by every attention launcher; throws CudaError naming `kernel`, the
// field and the value. 16-byte vector loads of K/V need head_dim % 8 == 0 and aligned pools.
inline void check_attention_args(const char* kernel, const void* q, int q_stride, int n_heads,
                                 const PagedKV& kv, const void* out) {
  auto fail = [&](const std::string& what) {
    throw CudaError(std::string(kernel) + ": " + what);
  };
  if (!q || !out) fail("q and out must be non-null");
  if (!kv.k || !kv.v) fail("kv.k and kv.v must be non-null");
  if (kv.num_blocks <= 0) fail("kv.num_blocks = " + std::to_string(kv.num_blocks) + ", expected > 0");
  if (kv.block_size <= 0)
    fail("kv.block_size = " + std::to_string(kv.block_size) + ", expected > 0");
  if (kv.n_kv_heads <= 0)
    fail("kv.n_kv_heads = " + std::to_string(kv.n_kv_heads) + ", expected > 0");
  if (kv.head_dim < 8 || kv.head_dim > 256 || kv.head_dim % 8 != 0)
    fail("kv.head_dim = " + std::to_string(kv.head_dim) + ", expected a multiple of 8 in [8, 256]");
  if (n_heads <= 0 || n_heads % kv.n_kv_heads != 0)
    fail("n_heads = " + std::to_string(n_heads) + ", expected a positive multiple of kv.n_kv_heads = " +
         std::to_string(kv.n_kv_heads));
  if (q_stride < n_heads * kv.head_dim)
    fail("q_stride = " + std::to_string(q_stride) + ", expected >= n_heads * head_dim = " +
         std::to_string(n_heads * kv.head_dim));
  if ((reinterpret_cast<uintptr_t>(kv.k) | reinterpret_cast<uintptr_t>(kv.v)) % 16 != 0)
    fail("kv.k and kv.v must be 16-byte aligned");
  if (kv.dtype != KvDtype::bf16 && kv.dtype != KvDtype::fp8_e4m3)
    fail("kv.dtype = " + std::to_string(int(kv.dtype)) + " is not bf16 (0) or fp8_e4m3 (1)");
  if (kv.dtype == KvDtype::fp8_e4m3 && (!kv.k_scale || !kv.v_scale))
    fail("fp8 KV needs kv.k_scale and kv.v_scale (device floats)");
}

}  // namespace twinfer::cuda::attn
