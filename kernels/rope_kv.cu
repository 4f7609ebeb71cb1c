// Rotary embedding of q and k in place, plus the paged-cache write of k and v, in one pass over
// the qkv rows (each element is read once and written at most twice).
//
// Fidelity with Hugging Face's bf16 forward: the Linear adds its bias before rounding the output
// to bf16 (we round after the add); cos/sin are computed in fp32 and then cast to the model dtype
// (bf16) before apply_rotary_pos_emb multiplies, and that function's q*cos, rotate_half(q)*sin
// and their sum each round to bf16. We do the same roundings so the cache holds what HF computes.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/ops.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda {
namespace {

__device__ __forceinline__ float rbf(float x) { return __bfloat162float(__float2bfloat16(x)); }

template <KvDtype kDt>
__device__ __forceinline__ void store_kv(void* pool, int64_t idx, float v, float scale) {
  if constexpr (kDt == KvDtype::bf16) {
    static_cast<bf16*>(pool)[idx] = __float2bfloat16(v);
  } else {
    // Saturating: out-of-range values clamp to +-448 instead of becoming NaN.
    const __nv_fp8_storage_t q = __nv_cvt_float_to_fp8(v / scale, __NV_SATFINITE, __NV_E4M3);
    static_cast<__nv_fp8_storage_t*>(pool)[idx] = q;
  }
}

// grid (T, ceil(n_heads + 2 n_kv) / hpc): each CTA takes hpc consecutive heads of one row (q
// heads, then k heads, then v heads). Small steps use hpc = 1 so a one-token decode step spreads
// over 48 CTAs instead of looping in one; large steps use one CTA per row (hpc = all heads), the
// cheaper shape when rows already fill the GPU. Row t of qkv [T, (n_heads + 2 n_kv) * hd]; bias
// [(n_heads + 2 n_kv) hd] or null; inv_freq [hd/2]. Cache pools [num_blocks * block_size
// (slots), n_kv, hd]. slot_mapping[t] < 0 (padding) or >= num_slots (the host validates; the
// guard keeps a bad slot from corrupting memory) skips the cache write; the rotation of the row
// happens regardless.
template <KvDtype kDt>
__global__ void kernel_rope_kv_write(bf16* __restrict__ qkv, const bf16* __restrict__ bias,
                                     const int32_t* __restrict__ positions,
                                     const float* __restrict__ inv_freq, int n_heads, int n_kv,
                                     int hd, int hpc, const int64_t* __restrict__ slot_mapping,
                                     int64_t num_slots, void* __restrict__ kcache,
                                     void* __restrict__ vcache, const float* __restrict__ k_scale,
                                     const float* __restrict__ v_scale) {
  pdl_trigger();
  pdl_wait();
  const int t = blockIdx.x;
  const int h0 = blockIdx.y * hpc, h1 = min(h0 + hpc, n_heads + 2 * n_kv);
  const int width = (n_heads + 2 * n_kv) * hd;
  bf16* row = qkv + int64_t(t) * width;
  const int half = hd / 2;
  const int64_t slot = slot_mapping[t];
  const bool write = slot >= 0 && slot < num_slots;
  const int64_t cache_row = write ? slot * n_kv * hd : 0;  // element (slot, h, d)
  float ks = 1.f, vs = 1.f;  // stored = x / scale, divided (not multiplied by 1/scale) as specified
  if constexpr (kDt == KvDtype::fp8_e4m3) {
    ks = *k_scale;
    vs = *v_scale;
  }

  // q heads then k heads in [h0, h1): rotate pairs (i, i + half).
  const int r1 = min(h1, n_heads + n_kv);
  if (h0 < r1) {
    const float pos = float(positions[t]);
    for (int j = threadIdx.x; j < (r1 - h0) * half; j += blockDim.x) {
      const int head = h0 + j / half;
      const int i = j % half;
      const int o1 = head * hd + i, o2 = o1 + half;
      float x1 = __bfloat162float(row[o1]), x2 = __bfloat162float(row[o2]);
      if (bias != nullptr) {
        x1 = rbf(x1 + __bfloat162float(bias[o1]));
        x2 = rbf(x2 + __bfloat162float(bias[o2]));
      }
      float sn, cs;
      sincosf(pos * inv_freq[i], &sn, &cs);  // full-range fp32 (angles reach ~1e5 rad)
      const float c = rbf(cs), s = rbf(sn);
      const float y1 = rbf(rbf(x1 * c) + rbf(-x2 * s));
      const float y2 = rbf(rbf(x2 * c) + rbf(x1 * s));
      row[o1] = __float2bfloat16(y1);
      row[o2] = __float2bfloat16(y2);
      if (write && head >= n_heads) {
        const int64_t base = cache_row + int64_t(head - n_heads) * hd;
        store_kv<kDt>(kcache, base + i, y1, ks);
        store_kv<kDt>(kcache, base + i + half, y2, ks);
      }
    }
  }
  // v heads in [h0, h1): bias then cache; v head vh's element d is row[(n_heads + n_kv + vh) hd + d].
  const int v0 = max(h0, n_heads + n_kv);
  if (v0 < h1) {
    const int vbase = (n_heads + n_kv) * hd;
    for (int j = (v0 - n_heads - n_kv) * hd + threadIdx.x; j < (h1 - n_heads - n_kv) * hd;
         j += blockDim.x) {
      float v = __bfloat162float(row[vbase + j]);
      if (bias != nullptr) {
        v = rbf(v + __bfloat162float(bias[vbase + j]));
        row[vbase + j] = __float2bfloat16(v);
      }
      if (write) store_kv<kDt>(vcache, cache_row + j, v, vs);
    }
  }
}

void fail(const std::string& what) { throw CudaError("rope_kv_write: " + what); }

}  // namespace

void rope_kv_write(bf16* qkv, const bf16* bias, int T, const int32_t* positions,
                   const float* inv_freq, int n_heads, int n_kv_heads, int head_dim,
                   const int64_t* slot_mapping, PagedKV kv, cudaStream_t s) {
  if (T < 0) fail("T must be >= 0, got " + std::to_string(T));
  if (n_heads <= 0 || n_kv_heads <= 0)
    fail("n_heads and n_kv_heads must be > 0, got " + std::to_string(n_heads) + " and " +
         std::to_string(n_kv_heads));
  if (head_dim <= 0 || head_dim % 2 != 0)
    fail("head_dim must be even and > 0, got " + std::to_string(head_dim));
  if (kv.n_kv_heads != n_kv_heads)
    fail("kv.n_kv_heads " + std::to_string(kv.n_kv_heads) + " != n_kv_heads " +
         std::to_string(n_kv_heads));
  if (kv.head_dim != head_dim)
    fail("kv.head_dim " + std::to_string(kv.head_dim) + " != head_dim " + std::to_string(head_dim));
  if (kv.num_blocks < 0 || kv.block_size <= 0)
    fail("kv.num_blocks must be >= 0 and kv.block_size > 0, got " + std::to_string(kv.num_blocks) +
         " and " + std::to_string(kv.block_size));
  if (kv.k == nullptr || kv.v == nullptr) fail("kv.k and kv.v must be set");
  if (kv.dtype == KvDtype::fp8_e4m3 && (kv.k_scale == nullptr || kv.v_scale == nullptr))
    fail("fp8 cache needs kv.k_scale and kv.v_scale");
  if (kv.dtype != KvDtype::bf16 && kv.dtype != KvDtype::fp8_e4m3)
    fail("unknown kv.dtype " + std::to_string(int(kv.dtype)));
  if (T == 0) return;
  const int64_t num_slots = int64_t(kv.num_blocks) * kv.block_size;
  const int heads = n_heads + 2 * n_kv_heads;
  const bool small = T <= 8;
  const int hpc = small ? 1 : heads;
  if ((heads + hpc - 1) / hpc > 65535)
    fail("n_heads + 2 n_kv_heads = " + std::to_string(heads) + " is too many for a small step's grid");
  const int th = small ? std::min(1024, (head_dim / 2 + 31) / 32 * 32) : 256;
  launch_pdl("kernel_rope_kv_write",
             kv.dtype == KvDtype::bf16 ? kernel_rope_kv_write<KvDtype::bf16>
                                       : kernel_rope_kv_write<KvDtype::fp8_e4m3>,
             dim3(T, (heads + hpc - 1) / hpc), th, 0, s, qkv, bias, positions, inv_freq, n_heads,
             n_kv_heads, head_dim, hpc,
             slot_mapping, num_slots, kv.k, kv.v, kv.k_scale, kv.v_scale);
}

}  // namespace twinfer::cuda
