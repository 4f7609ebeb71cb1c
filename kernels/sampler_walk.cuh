// The CPU sampler's walk (core/sampling.cpp, `walk`) over a sorted candidate list, done by one
// CTA: prefix sums of fixed-point masses in chunks of kThreads keys (one BlockScan per chunk),
// first crossings by block-wide OR and min. Same integers and comparisons as the CPU's
// sequential loops, so the same token.
#pragma once
#include <cub/cub.cuh>

#include "kernels/sampler_math.cuh"

namespace twinfer::cuda::sampler_detail {

template <int kThreads>
struct Walker {
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  struct Storage {
    typename Scan::TempStorage scan;
    uint64_t value;
    int32_t index;
  };
  Storage& s;

  // C_cnt = sum of fixed masses of keys[0, cnt).
  __device__ uint64_t prefix_sum(const uint64_t* keys, int32_t cnt) {
    uint64_t carry = 0;
    for (int32_t base = 0; base < cnt; base += kThreads) {
      const int32_t r = base + static_cast<int32_t>(threadIdx.x);
      const uint64_t f = r < cnt ? fixed_mass(key_prob(keys[r])) : 0;
      uint64_t incl, chunk;
      Scan(s.scan).InclusiveSum(f, incl, chunk);
      __syncthreads();  // the scan storage is reused by the next chunk
      carry += chunk;
    }
    return carry;
  }

  // First r < lim with pred(C_{r+1}) (pred monotone in C), or lim when none.
  template <class Pred>
  __device__ int32_t first_crossing(const uint64_t* keys, int32_t lim, Pred pred) {
    if (threadIdx.x == 0) s.index = lim;
    __syncthreads();
    uint64_t carry = 0;
    for (int32_t base = 0; base < lim; base += kThreads) {
      const int32_t r = base + static_cast<int32_t>(threadIdx.x);
      const uint64_t f = r < lim ? fixed_mass(key_prob(keys[r])) : 0;
      uint64_t incl, chunk;
      Scan(s.scan).InclusiveSum(f, incl, chunk);
      const bool hit = r < lim && pred(carry + incl);
      if (hit) atomicMin(&s.index, r);
      if (__syncthreads_or(hit)) break;  // also orders the scan storage's reuse
      carry += chunk;
    }
    __syncthreads();
    const int32_t r = s.index;
    __syncthreads();
    return r;
  }

  // Number of leading keys in [0, end) with q >= thr (q descends along the keys).
  __device__ int32_t count_at_least(const uint64_t* keys, int32_t end, float thr) {
    if (threadIdx.x == 0) {
      int32_t lo = 0, hi = end;  // binary search: first key with q < thr
      while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (key_prob(keys[mid]) >= thr) lo = mid + 1; else hi = mid;
      }
      s.index = lo;
    }
    __syncthreads();
    const int32_t kept = s.index;
    __syncthreads();
    return kept;
  }

  // keys[0, n): sorted candidates (every token with q >= some tau and q > 0). complete: they
  // are all tokens with q > 0. Rank-truncated rows only (top-k or top-p; the others draw in id
  // order, sampler_idorder.cuh). Returns the token, or -1 when the walk needs keys beyond n.
  __device__ int32_t walk(const uint64_t* keys, int32_t n, bool complete, const RowDesc& d,
                          uint64_t total, int64_t vocab) {
    const bool use_top_k = d.top_k > 1 && d.top_k < vocab;
    const bool use_top_p = d.top_p < 1.0;
    int32_t lim = n;
    uint64_t norm = total;
    if (use_top_k) {
      lim = min(d.top_k, n);
      norm = prefix_sum(keys, lim);
      complete = true;  // the caller's head holds the top k (or every token)
    }
    int32_t end = lim;
    if (use_top_p) {
      const double need = __dmul_rn(d.top_p, __ull2double_rn(norm));
      const int32_t r = first_crossing(keys, lim, [need](uint64_t c) { return !(__ull2double_rn(c) < need); });
      if (r == lim && !complete) return -1;
      end = r == lim ? lim : r + 1;
    }
    const int32_t kept = count_at_least(keys, end, d.min_p);
    const uint64_t mass = prefix_sum(keys, kept);
    const uint64_t target = draw_target(d.key, mass);
    const int32_t r = first_crossing(keys, kept, [target](uint64_t c) { return c > target; });
    if (r < kept) return key_id(keys[r]);
    return complete ? key_id(keys[kept > 0 ? kept - 1 : 0]) : -1;
  }
};

}  // namespace twinfer::cuda::sampler_detail
