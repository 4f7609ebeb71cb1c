// The untruncated draw (top_p == 1, no top-k; core/sampling.cpp's id-order branch) done by one
// CTA without a sort: the kept tokens are those with q >= min_p, and the inverse-CDF walk goes
// over them in ascending id order. Two passes over the row: the kept fixed-point mass (block
// reduce), then tiles of kThreads * kIdItems ids in which thread t owns the contiguous ids
// [tile + t * kIdItems, +kIdItems): an exclusive BlockScan of the per-thread sums, in id order,
// plus the carry of earlier tiles, locates the one thread whose ids hold the first inclusive
// cumulative sum > target. All integers, so the CPU's sequential loop gives the same id.
#pragma once
#include <cub/cub.cuh>

#include <cstdint>

#include "kernels/sampler_math.cuh"

namespace twinfer::cuda::sampler_detail {

constexpr int kIdItems = 4;  // consecutive ids per thread per tile (one float4 when aligned)

// Fixed-point masses of ids [i0, i0 + kIdItems) of row l: fixed_mass(q) when q >= min_p,
// else 0 (also for NaN logits and ids past the vocab). vec: l is 16-byte aligned, so i0 (a
// multiple of kIdItems) is too and a full group loads as one float4.
__device__ __forceinline__ void id_masses(const float* l, int64_t vocab, int64_t i0, bool vec, float t,
                                          float m, float min_p, uint64_t (&f)[kIdItems]) {
  float x[kIdItems];
  if (vec && i0 + kIdItems <= vocab) {
    const float4 v4 = *reinterpret_cast<const float4*>(l + i0);
    x[0] = v4.x;
    x[1] = v4.y;
    x[2] = v4.z;
    x[3] = v4.w;
  } else {
#pragma unroll
    for (int j = 0; j < kIdItems; ++j) x[j] = i0 + j < vocab ? l[i0 + j] : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kIdItems; ++j) {
    const float s = __fdiv_rn(x[j], t);
    const float q = s == s ? sampling_exp(__fsub_rn(s, m)) : 0.0f;
    f[j] = (i0 + j < vocab && q >= min_p) ? fixed_mass(q) : 0;
  }
}

template <int kThreads>
struct IdOrderDraw {
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  typename Scan::TempStorage& scan;
  typename Reduce::TempStorage& reduce;
  int32_t& s_id;     // shared: the drawn id
  uint64_t& s_mass;  // shared: the kept mass

  // l: one row [vocab] of raw logits (scaled here by 1/t, as the CPU does); m: max of l / t
  // (finite). fallback: the argmax, read from thread 0 only; returned (as the CPU does) if no
  // crossing is found, which cannot happen: the top token (q = 1 >= min_p) makes mass > 0, so
  // target < mass. Every thread gets the id.
  __device__ int32_t draw(const float* l, int64_t vocab, float t, float m, float min_p, uint64_t key,
                          int32_t fallback) {
    constexpr int64_t kTile = static_cast<int64_t>(kThreads) * kIdItems;
    const bool vec = (reinterpret_cast<uintptr_t>(l) & 15u) == 0;
    const int64_t mine = static_cast<int64_t>(threadIdx.x) * kIdItems;
    uint64_t mass = 0;
    for (int64_t base = 0; base < vocab; base += kTile) {
      uint64_t f[kIdItems];
      id_masses(l, vocab, base + mine, vec, t, m, min_p, f);
#pragma unroll
      for (int j = 0; j < kIdItems; ++j) mass += f[j];
    }
    mass = Reduce(reduce).Sum(mass);  // valid in thread 0
    if (threadIdx.x == 0) {
      s_mass = mass;
      s_id = fallback;
    }
    __syncthreads();
    const uint64_t target = draw_target(key, s_mass);
    uint64_t carry = 0;  // kept mass of the ids before this tile
    for (int64_t base = 0; base < vocab; base += kTile) {
      const int64_t i0 = base + mine;
      uint64_t f[kIdItems];
      id_masses(l, vocab, i0, vec, t, m, min_p, f);
      uint64_t local = 0;
#pragma unroll
      for (int j = 0; j < kIdItems; ++j) local += f[j];
      uint64_t excl, tile_sum;
      Scan(scan).ExclusiveSum(local, excl, tile_sum);
      uint64_t cum = carry + excl;  // kept mass of the ids before i0
      // The crossing lies in my ids iff cum <= target < cum + local (at most one thread).
      const bool hit = cum <= target && target - cum < local;
      if (hit) {
#pragma unroll
        for (int j = 0; j < kIdItems; ++j) {
          cum += f[j];
          if (cum > target) {
            s_id = static_cast<int32_t>(i0 + j);
            break;
          }
        }
      }
      if (__syncthreads_or(hit)) break;  // also orders the scan storage's reuse
      carry += tile_sum;
    }
    __syncthreads();
    return s_id;
  }
};

}  // namespace twinfer::cuda::sampler_detail
