// The untruncated draw (top_p == 1, no top-k; core/sampling.cpp's id-order branch) done by one
// CTA without a sort: the kept tokens are those with q >= min_p, and the inverse-CDF walk goes
// over them in ascending id order. The row is cut into tiles of kThreads * kIdItems ids in
// which thread t owns the contiguous ids [tile + t * kIdItems, +kIdItems), so thread order is
// id order. One read of the row gives each tile's kept fixed-point mass; their running sum
// picks the tile holding the target; an exclusive BlockScan of the per-thread sums in that
// tile, plus the carry of earlier tiles, picks the one thread whose ids hold the first
// inclusive cumulative sum > target. All integers, so the CPU's sequential loop gives the same
// id.
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

// Block-shared scalars of one draw.
struct IdOrderShared {
  uint64_t mass;   // kept mass of the row
  uint64_t carry;  // kept mass of the ids before the crossing tile
  int32_t tile;    // the tile holding the crossing (-1: none)
  int32_t id;      // the drawn id
};

// Tiles of a row: ids [c * kTile, (c + 1) * kTile). vocab < 2^20 (GpuSampler checks) gives at
// most 2^20 / (512 * 4) = 512 tiles.
template <int kThreads>
constexpr int64_t id_tile_ids() { return static_cast<int64_t>(kThreads) * kIdItems; }

template <int kThreads>
struct IdOrderDraw {
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  typename Scan::TempStorage& scan;
  uint64_t* tile_mass;  // shared [ceil(vocab / kTile)] kept mass per tile
  IdOrderShared& sh;

  // l: one row [vocab] of raw logits (scaled here by 1/t, as the CPU does); m: max of l / t
  // (finite). fallback: the argmax, read from thread 0 only; returned (as the CPU does) if no
  // crossing is found, which cannot happen: the top token (q = 1 >= min_p) makes mass > 0, so
  // target < mass. Every thread gets the id.
  // Pass 1 (one read): per-tile kept masses (warp sums, one shared atomic per warp and tile).
  // Thread 0 then sums the tiles in order and finds the tile whose running sum first exceeds the
  // target. Pass 2 (one tile): the exclusive scan inside that tile finds the id.
  __device__ int32_t draw(const float* l, int64_t vocab, float t, float m, float min_p, uint64_t key,
                          int32_t fallback) {
    constexpr int64_t kTile = id_tile_ids<kThreads>();
    const int64_t n_tiles = (vocab + kTile - 1) / kTile;
    const bool vec = (reinterpret_cast<uintptr_t>(l) & 15u) == 0;
    const int64_t mine = static_cast<int64_t>(threadIdx.x) * kIdItems;
    for (int64_t c = threadIdx.x; c < n_tiles; c += kThreads) tile_mass[c] = 0;
    __syncthreads();
    for (int64_t c = 0; c < n_tiles; ++c) {
      uint64_t f[kIdItems];
      id_masses(l, vocab, c * kTile + mine, vec, t, m, min_p, f);
      unsigned long long local = 0;
#pragma unroll
      for (int j = 0; j < kIdItems; ++j) local += f[j];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) local += __shfl_xor_sync(0xffffffffu, local, o);
      if ((threadIdx.x & 31) == 0 && local > 0)
        atomicAdd(reinterpret_cast<unsigned long long*>(tile_mass + c), local);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t mass = 0;
      for (int64_t c = 0; c < n_tiles; ++c) mass += tile_mass[c];
      const uint64_t target = draw_target(key, mass);
      uint64_t carry = 0;
      int32_t tile = -1;
      for (int64_t c = 0; c < n_tiles; ++c) {
        if (target - carry < tile_mass[c]) {  // carry <= target < carry + tile_mass[c]
          tile = static_cast<int32_t>(c);
          break;
        }
        carry += tile_mass[c];
      }
      sh.mass = mass;
      sh.carry = carry;
      sh.tile = tile;
      sh.id = fallback;
    }
    __syncthreads();
    if (sh.tile >= 0) {
      const uint64_t target = draw_target(key, sh.mass);
      const int64_t i0 = sh.tile * kTile + mine;
      uint64_t f[kIdItems];
      id_masses(l, vocab, i0, vec, t, m, min_p, f);
      uint64_t local = 0;
#pragma unroll
      for (int j = 0; j < kIdItems; ++j) local += f[j];
      uint64_t excl;
      Scan(scan).ExclusiveSum(local, excl);
      uint64_t cum = sh.carry + excl;  // kept mass of the ids before i0
      // The crossing lies in my ids iff cum <= target < cum + local (exactly one thread).
      if (cum <= target && target - cum < local) {
#pragma unroll
        for (int j = 0; j < kIdItems; ++j) {
          cum += f[j];
          if (cum > target) {
            sh.id = static_cast<int32_t>(i0 + j);
            break;
          }
        }
      }
    }
    __syncthreads();
    return sh.id;
  }
};

}  // namespace twinfer::cuda::sampler_detail
