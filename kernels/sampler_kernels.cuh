// Kernels of the GPU sampler (kernels/sampler.cu). Shapes: logits fp32 [rows, vocab] row-major;
// one CTA per row except the penalty kernel (a fixed grid that loops over the rows to penalise,
// each CTA with its own [vocab] int32 count scratch, zero between rows).
#pragma once
#include <cub/cub.cuh>

#include <cfloat>
#include <climits>

#include "kernels/sampler_idorder.cuh"
#include "kernels/sampler_walk.cuh"

namespace twinfer::cuda::sampler_detail {

constexpr int kSampleThreads = 512;
constexpr int kSortItems = 8;
constexpr int kHeadCap = kSampleThreads * kSortItems;  // sorted head held in shared memory
constexpr int kArgmaxThreads = 256;
constexpr int kPenaltyThreads = 256;
constexpr int kZeroBucket = 128;  // histogram slot of q == 0

struct Best {
  float v;
  int32_t i;
};
struct BestOp {
  // Larger value wins; equal values: the lower id (the CPU's first strict maximum).
  __device__ Best operator()(const Best& a, const Best& b) const {
    if (a.v > b.v) return a;
    if (b.v > a.v) return b;
    return a.i <= b.i ? a : b;
  }
};

// Argmax of l[i] / t over one row, lowest id on ties, NaN never wins, none > -inf: id 0.
template <int kThreads>
__device__ Best row_argmax(const float* l, int64_t vocab, float t,
                           typename cub::BlockReduce<Best, kThreads>::TempStorage& tmp) {
  Best b{-INFINITY, INT_MAX};
  for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float s = __fdiv_rn(l[i], t);
    if (s > b.v) b = Best{s, static_cast<int32_t>(i)};
  }
  Best r = cub::BlockReduce<Best, kThreads>(tmp).Reduce(b, BestOp{});
  if (r.i == INT_MAX) r.i = 0;
  return r;  // valid in thread 0
}

// All-greedy batch without penalties: each row is split over kArgmaxParts CTAs (one CTA per
// row was a single SM pulling the whole 0.5 MB row, tens of us at batch 1), then one warp per
// row reduces the partial winners with the same tie rule.
constexpr int kArgmaxParts = 32;
__global__ void __launch_bounds__(kArgmaxThreads)
argmax_part_kernel(const float* logits, int64_t vocab, Best* parts) {
  __shared__ typename cub::BlockReduce<Best, kArgmaxThreads>::TempStorage tmp;
  const int64_t chunk = (vocab + kArgmaxParts - 1) / kArgmaxParts;
  const int64_t lo = blockIdx.x * chunk, hi = min(vocab, lo + chunk);
  const float* l = logits + blockIdx.y * vocab;
  Best b{-INFINITY, INT_MAX};
#pragma unroll 4
  for (int64_t i = lo + threadIdx.x; i < hi; i += kArgmaxThreads) {
    const float s = l[i];
    if (s > b.v) b = Best{s, static_cast<int32_t>(i)};
  }
  const Best r = cub::BlockReduce<Best, kArgmaxThreads>(tmp).Reduce(b, BestOp{});
  if (threadIdx.x == 0) parts[blockIdx.y * kArgmaxParts + blockIdx.x] = r;
}
__global__ void __launch_bounds__(32) argmax_final_kernel(const Best* parts, int32_t* out) {
  static_assert(kArgmaxParts <= 32, "one lane per part");
  Best b = threadIdx.x < kArgmaxParts ? parts[blockIdx.x * kArgmaxParts + threadIdx.x]
                                      : Best{-INFINITY, INT_MAX};
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = BestOp{}(b, other);
  }
  if (threadIdx.x == 0) out[blockIdx.x] = b.i == INT_MAX ? 0 : b.i;
}

// Penalties (repetition over prompt+output, frequency/presence over output), then min_tokens
// masking, in place. rows: the batch rows that need either; cnt: [gridDim.x, vocab] scratch.
__global__ void __launch_bounds__(kPenaltyThreads)
penalty_kernel(float* logits, int64_t vocab, const RowDesc* desc, const int32_t* rows, int n_rows,
               const int32_t* tokens, int32_t* scratch) {
  uint32_t* cnt = reinterpret_cast<uint32_t*>(scratch) + blockIdx.x * vocab;
  constexpr uint32_t kDone = 0x80000000u;  // high bit: this token was penalised already
  for (int j = blockIdx.x; j < n_rows; j += gridDim.x) {
    const int32_t row = rows[j];
    const RowDesc d = desc[row];
    float* l = logits + static_cast<int64_t>(row) * vocab;
    const int32_t* seq = tokens + d.tok_off;  // prompt then output
    const int32_t n_seq = d.n_prompt + d.n_output;
    if (d.penalize) {
      for (int32_t i = d.n_prompt + threadIdx.x; i < n_seq; i += kPenaltyThreads) {
        const int32_t t = seq[i];
        if (t >= 0 && t < vocab) atomicAdd(&cnt[t], 1u);
      }
      __syncthreads();
      for (int32_t i = threadIdx.x; i < n_seq; i += kPenaltyThreads) {
        const int32_t t = seq[i];
        if (t < 0 || t >= vocab) continue;
        const uint32_t old = atomicOr(&cnt[t], kDone);
        if (old & kDone) continue;
        const uint32_t c = old;  // output occurrences
        float x = l[t];
        if (d.rep != 1.0f) x = x > 0 ? __fdiv_rn(x, d.rep) : __fmul_rn(x, d.rep);
        const float sub = __fadd_rn(__fmul_rn(d.freq, __uint2float_rn(c)), c > 0 ? d.pres : 0.0f);
        l[t] = __fsub_rn(x, sub);
      }
      __syncthreads();
      for (int32_t i = threadIdx.x; i < n_seq; i += kPenaltyThreads) {
        const int32_t t = seq[i];
        if (t >= 0 && t < vocab) cnt[t] = 0;
      }
      __syncthreads();
    }
    for (int32_t i = threadIdx.x; i < d.n_mask; i += kPenaltyThreads) {
      const int32_t t = tokens[d.mask_off + i];  // range-checked on the host
      l[t] = -INFINITY;
    }
    __syncthreads();
  }
}

// One CTA per row: argmax (greedy rows stop there). Rows without top-k / top-p draw in id
// order (IdOrderDraw: two more reads of the row, no sort). The others: probabilities and exact
// fixed-point sums with a histogram of magnitudes, the head that must hold the draw (q >= 2^-b), sorted in
// shared memory, then the CPU's walk. A head over kHeadCap tokens (or a walk that runs past
// it) leaves out[row] = -1 and stats for the host's full-sort fallback.
__global__ void __launch_bounds__(kSampleThreads)
sample_kernel(const float* logits, int64_t vocab, const RowDesc* desc, RowStats* stats,
              int32_t* out) {
  using Sort = cub::BlockRadixSort<uint64_t, kSampleThreads, kSortItems>;
  using Reduce = cub::BlockReduce<uint64_t, kSampleThreads>;
  using W = Walker<kSampleThreads>;
  __shared__ union {
    typename Sort::TempStorage sort;
    uint64_t head[kHeadCap];  // [n_head] order keys
  } big;
  __shared__ union {
    typename cub::BlockReduce<Best, kSampleThreads>::TempStorage best;
    typename Reduce::TempStorage sum;
  } red;
  __shared__ typename W::Storage walk_storage;
  __shared__ uint32_t hist[kZeroBucket + 1];   // tokens per binary magnitude
  __shared__ uint32_t units[kZeroBucket + 1];  // sum of (256 + top 8 mantissa bits) per magnitude
  __shared__ float s_m, s_tau;
  __shared__ int32_t s_n, s_state;  // s_state: 0 go on, 1 done, 2 fallback
  __shared__ uint64_t s_total;

  const int row = blockIdx.x;
  const RowDesc d = desc[row];
  const float* l = logits + static_cast<int64_t>(row) * vocab;
  const float t = d.greedy ? 1.0f : d.temperature;
  const int tid = threadIdx.x;

  for (int b = tid; b <= kZeroBucket; b += kSampleThreads) hist[b] = units[b] = 0;
  const Best best = row_argmax<kSampleThreads>(l, vocab, t, red.best);
  if (tid == 0) {
    s_m = best.v;
    // Greedy, everything masked, or a +inf logit that takes all the mass: the argmax.
    s_state = (d.greedy || !(best.v > -INFINITY) || best.v == INFINITY) ? 1 : 0;
    if (s_state == 1) {
      out[row] = best.i;
      stats[row].status = 0;
    }
  }
  __syncthreads();
  if (s_state == 1) return;
  const float m = s_m;
  const bool use_top_k = d.top_k > 1 && d.top_k < vocab;
  if (!use_top_k && !(d.top_p < 1.0)) {
    // big.head (4096 words) holds the per-tile masses: at most 512 tiles (vocab < 2^20).
    static_assert(kHeadCap * id_tile_ids<kSampleThreads>() >= (int64_t{1} << 20));
    __shared__ IdOrderShared id_shared;
    IdOrderDraw<kSampleThreads> draw{walk_storage.scan, big.head, id_shared};
    const int32_t id = draw.draw(l, vocab, t, m, d.min_p, d.key, best.i);
    if (tid == 0) {
      out[row] = id;
      stats[row] = RowStats{m, 0, id_shared.mass};
    }
    return;
  }

  // Pass 2: q = exp(l/t - m), fixed-point total, histogram of binary magnitudes.
  uint64_t tot = 0;
  for (int64_t base = 0; base < vocab; base += kSampleThreads) {
    const int64_t i = base + tid;
    int bucket = kZeroBucket + 1;  // out of range: no slot
    uint32_t unit = 0;
    if (i < vocab) {
      const float s = __fdiv_rn(l[i], t);
      const float q = s == s ? sampling_exp(__fsub_rn(s, m)) : 0.0f;
      const uint64_t f = fixed_mass(q);
      tot += f;
      bucket = q > 0.0f ? 127 - static_cast<int>(min(__float_as_uint(q) >> 23, 127u)) : kZeroBucket;
      unit = 256u + ((__float_as_uint(q) >> 15) & 255u);  // q >= unit * 2^(-b-8) for normal q
    }
    // Warp-aggregated: one round (full-warp ballot and reduction) per distinct bucket.
    const int lane = threadIdx.x & 31;
    unsigned todo = __ballot_sync(0xffffffffu, bucket <= kZeroBucket);
    while (todo) {
      const int leader = __ffs(todo) - 1;
      const int lb = __shfl_sync(0xffffffffu, bucket, leader);
      const bool mine = bucket == lb;
      const unsigned group = __ballot_sync(0xffffffffu, mine);
      const uint32_t sum = __reduce_add_sync(0xffffffffu, mine ? unit : 0u);
      if (lane == leader) {
        atomicAdd(&hist[lb], static_cast<uint32_t>(__popc(group)));
        atomicAdd(&units[lb], sum);
      }
      todo &= ~group;
    }
  }
  tot = Reduce(red.sum).Sum(tot);
  if (tid == 0) {
    s_total = tot;
    // The head q >= 2^-b for the first depth b whose lower-bound mass already covers the
    // nucleus, or whose count reaches top-k. Lower bound per bucket b <= 36:
    // units * 2^(36-b) <= sum of fixed_mass (within 0.4%); deeper buckets count as 0.
    const double need = __dmul_rn(d.top_p, __ull2double_rn(tot));
    int chosen = -1;
    uint64_t count = 0, lb = 0;
    for (int b = 0; b < 126 && chosen < 0; ++b) {
      count += hist[b];
      if (b <= 36) lb += static_cast<uint64_t>(units[b]) << (36 - b);
      const bool enough = use_top_k ? count >= static_cast<uint64_t>(d.top_k)
                                    : !(__ull2double_rn(lb) < need);
      if (enough) chosen = b;
    }
    if (chosen < 0) {  // every token with q > 0
      count = 0;
      for (int b = 0; b < kZeroBucket; ++b) count += hist[b];
    }
    s_tau = chosen < 0 ? 0.0f : __int_as_float((127 - chosen) << 23);  // 2^-chosen
    s_state = count > static_cast<uint64_t>(kHeadCap) ? 2 : 0;
    s_n = 0;
    stats[row] = RowStats{m, 0, tot};
  }
  __syncthreads();
  const bool complete = s_tau == 0.0f;
  if (s_state == 0) {
    // Pass 3: collect the head's order keys (warp-aggregated appends).
    const float tau = s_tau;
    for (int64_t base = 0; base < vocab; base += kSampleThreads) {
      const int64_t i = base + tid;
      bool take = false;
      float q = 0.0f;
      if (i < vocab) {
        const float s = __fdiv_rn(l[i], t);
        q = s == s ? sampling_exp(__fsub_rn(s, m)) : 0.0f;
        take = q > 0.0f && q >= tau;
      }
      const unsigned ballot = __ballot_sync(0xffffffffu, take);
      const int lane = threadIdx.x & 31;
      int32_t first = 0;
      if (lane == 0 && ballot) first = atomicAdd(&s_n, __popc(ballot));
      first = __shfl_sync(0xffffffffu, first, 0);
      if (take) big.head[first + __popc(ballot & ((1u << lane) - 1))] = order_key(q, static_cast<int32_t>(i));
    }
    __syncthreads();
    const int32_t n = s_n;
    uint64_t items[kSortItems];  // blocked: thread tid holds keys [tid * kSortItems, +kSortItems)
#pragma unroll
    for (int j = 0; j < kSortItems; ++j) {
      const int idx = tid * kSortItems + j;
      items[j] = idx < n ? big.head[idx] : ~0ull;
    }
    __syncthreads();
    Sort(big.sort).Sort(items);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kSortItems; ++j) big.head[tid * kSortItems + j] = items[j];
    __syncthreads();
    W w{walk_storage};
    const int32_t id = w.walk(big.head, n, complete, d, s_total, vocab);
    if (tid == 0) {
      out[row] = id;
      if (id < 0) stats[row].status = 1;
    }
  } else if (tid == 0) {
    out[row] = -1;
    stats[row].status = 1;
  }
}

// Fallback, step 1: order keys of one row's tokens (q == 0: ~0, sorted last).
__global__ void keys_kernel(const float* l, int64_t vocab, const RowDesc* d, const RowStats* st,
                            uint64_t* keys) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= vocab) return;
  const float s = __fdiv_rn(l[i], d->temperature);
  const float q = s == s ? sampling_exp(__fsub_rn(s, st->m)) : 0.0f;
  keys[i] = q > 0.0f ? order_key(q, static_cast<int32_t>(i)) : ~0ull;
}

// Fallback, step 3: the walk over every token, sorted (one CTA).
__global__ void __launch_bounds__(kSampleThreads)
walk_kernel(const uint64_t* keys, int64_t vocab, const RowDesc* d, const RowStats* st, int32_t* out) {
  using W = Walker<kSampleThreads>;
  __shared__ typename W::Storage storage;
  __shared__ int32_t s_n;
  if (threadIdx.x == 0) {
    int32_t lo = 0, hi = static_cast<int32_t>(vocab);  // first ~0 key: number of q > 0
    while (lo < hi) {
      const int32_t mid = lo + (hi - lo) / 2;
      if (keys[mid] != ~0ull) lo = mid + 1; else hi = mid;
    }
    s_n = lo;
  }
  __syncthreads();
  W w{storage};
  const RowDesc desc = *d;
  const int32_t id = w.walk(keys, s_n, true, desc, st->total, vocab);
  if (threadIdx.x == 0) *out = id;
}

}  // namespace twinfer::cuda::sampler_detail
