// Paged decode attention with q.k on tensor cores, and the split-K combine inside the kernel.
//
// Why: the CUDA-core kernel (attention_decode.cu) spreads a token's q.k over 16 lanes and sums
// it with a 4-step shuffle per q head, so pass 1 issues ~70 instructions per 16-byte K load; at
// batch 64 x 4096 it held 80% of HBM bandwidth and fp8 (same instructions for half the bytes)
// fell to about a third. Here one mma.m16n8k16 takes 16 tokens x 16 dims against up to 8 q
// heads (the GQA group), so pass 1 is a few instructions per load and both dtypes become
// bandwidth-bound.
//
// Grid (n_kv_heads * chunks, B, P), 128 threads, as the CUDA-core kernel; kP keys a partition.
//   pass 1: each warp takes tiles of 16 tokens; lane (g = lane / 4, c = lane % 4) loads 16 bytes
//     of rows g and g + 8 per 4 * E dims (E = 8 bf16 or 16 fp8 elements), which are its A
//     fragments: the mma's k order is a permutation of the head dims, and q's B fragments are
//     built with the same permutation, so the dot products are exact. fp8 K converts to f16
//     (exact) and q to f16; bf16 K runs bf16 x bf16. Accumulation is fp32 either way.
//   pass 2: exact max and sum per head over the partition (as the CUDA-core kernel);
//   pass 3: probability-weighted V on CUDA cores (no per-token shuffles there).
// Split sequences write (acc, max, sum) to the workspace; the last CTA of a (sequence, column)
// to arrive, counted by an atomic, combines them and resets the counter, so there is no second
// kernel (at batch 1 that kernel and its dependency wait were ~4 us a layer).
// PDL: the block table and context lengths are uploaded by a copy before the step, and K of
// every position but the newest (len - 1, written by this step's rope_kv_write) was written by
// earlier steps, so the first K batch is loaded before pdl_wait(); q and the newest K row after.
#include "kernels/attention_common.cuh"
#include "kernels/attention_decode_impl.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda::decode_impl {
namespace {

using attn::fp8;
using attn::KvVec;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 16;    // tokens per mma tile (the m of m16n8k16)
constexpr int kUnrollV = 8;  // V vectors in flight per lane in pass 3
// Tiles per warp per load batch (64 fp8 or 128 bf16 bytes in flight per lane each). 1 measured
// fastest for both dtypes (H100, B64 x 4096: bf16 419 us against 442 at 2 and 500 at 4; fp8 294
// against 353 and 354): fewer registers, more CTAs per SM (kernels/lab/NOTES_attention.md).
constexpr int kNT = 1;

// E = elements per 16-byte load; per k-block of 16 (logical) dims a lane holds 4 physical dims.
template <class T>
constexpr int kElems = 16 / int(sizeof(T));

__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1, bool f16) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (f16)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // the launcher only runs this kernel on builds for sm_80 and newer
#endif
}

__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two), __NV_E4M3);
  return uint32_t(h.x) | (uint32_t(h.y) << 16);
}

__device__ __forceinline__ uint32_t f16x2(float a, float b) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// The (a0..a3) of k-block i of a 16-byte chunk: rows g (u) and g + 8 (v), physical dims
// 4i .. 4i+3 of the chunk as logical (2c, 2c+1) and (2c+8, 2c+9).
template <class T>
__device__ __forceinline__ void a_frag(const uint4& u, const uint4& v, int i, uint32_t (&a)[4]) {
  const uint32_t* uw = reinterpret_cast<const uint32_t*>(&u);
  const uint32_t* vw = reinterpret_cast<const uint32_t*>(&v);
  if constexpr (sizeof(T) == 2) {
    a[0] = uw[2 * i];
    a[1] = vw[2 * i];
    a[2] = uw[2 * i + 1];
    a[3] = vw[2 * i + 1];
  } else {
    a[0] = e4m3x2_to_f16x2(uw[i] & 0xFFFFu);
    a[1] = e4m3x2_to_f16x2(vw[i] & 0xFFFFu);
    a[2] = e4m3x2_to_f16x2(uw[i] >> 16);
    a[3] = e4m3x2_to_f16x2(vw[i] >> 16);
  }
}

template <class T, int D, int GM, int kP>
__global__ __launch_bounds__(kThreads) void decode_mma_kernel(
    const bf16* __restrict__ q, int q_stride, const int32_t* __restrict__ context_lens,
    const int32_t* __restrict__ block_tables, int mbps, const T* __restrict__ kc,
    const T* __restrict__ vc, int block_size, int n_kv_heads, int group,
    const float* k_scale_p, const float* v_scale_p, KvDtype dt, float scale, int max_context,
    int num_parts, Workspace ws, bf16* __restrict__ out) {
  constexpr bool kF16 = sizeof(T) == 1;
  constexpr int E = kElems<T>;
  constexpr int J = D / (4 * E);   // 16-byte loads per row per lane
  constexpr int KB = E / 4;        // k-blocks per load
  static_assert(D % (4 * E) == 0 && GM >= 1 && GM <= 8, "unsupported shape");  // so D % 32 == 0
  constexpr int VEC = KvVec<T>::VEC;
  constexpr int LPT = D / VEC;  // pass 3: lanes per token
  static_assert(LPT >= 1 && LPT <= 32 && 32 % LPT == 0, "unsupported head_dim");
  constexpr int TPW = 32 / LPT, TPS = TPW * kWarps, kStepV = TPS * kUnrollV;
  using RawV = typename KvVec<T>::Raw;

  __shared__ float s_p[GM][kP];
  __shared__ float s_out[GM][D];
  __shared__ float s_m[GM], s_l[GM];
  __shared__ bool s_last;

  const int chunks = group / GM;
  const int kvh = blockIdx.x / chunks;
  const int h0 = kvh * group + (blockIdx.x % chunks) * GM;
  const int n_heads = n_kv_heads * group;
  const int b = blockIdx.y, part = blockIdx.z;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, c = lane % 4;

  // Step metadata: uploaded before the step, safe to read before the wait (see the header).
  const int len = min(min(context_lens[b], max_context), mbps * block_size);
  const int start = part * kP;
  if (len > 0 && start >= len) return;  // no reads of activations, no writes
  const int n = len > 0 ? min(kP, len - start) : 0;
  const int32_t* table = block_tables + int64_t(b) * mbps;
  const int n_tiles = (n + kTile - 1) / kTile;

  uint4 kr[kNT][2][J];
  // Loads tile batch `tb` (tiles tb .. tb + kNT - 1) for rows g and g + 8. mode 0: everything;
  // 1: all but the newest position (before the wait); 2: only the newest (after it).
  auto load_k = [&](int tb, int mode) {
#pragma unroll
    for (int i = 0; i < kNT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int t = (tb + i) * kTile + g + 8 * h;
        const bool newest = start + t == len - 1;
        const bool want = t < n && (mode == 0 || (mode == 1) != newest);
        if (!want) {
          if (mode != 2)
#pragma unroll
            for (int j = 0; j < J; ++j) kr[i][h][j] = make_uint4(0, 0, 0, 0);
          continue;
        }
        const T* row = kc + attn::kv_offset(table, start + t, block_size, n_kv_heads, kvh, D);
#pragma unroll
        for (int j = 0; j < J; ++j)
          kr[i][h][j] = __ldg(reinterpret_cast<const uint4*>(row + 4 * E * j + E * c));
      }
  };
  const int tb0 = warp * kNT;
  if (tb0 < n_tiles) load_k(tb0, 1);
  // Small partitions (kP = 64, batches <= 8, where a step is a chain of latencies): pass 3's
  // single V batch is loaded here too, all but the newest row, so no HBM round trip is left
  // between the softmax and the P.V accumulation.
  const int l = lane % LPT, tw = lane / LPT;
  constexpr bool kVEarly = kP <= kStepV;
  RawV vpre[kVEarly ? kUnrollV : 1];
  auto load_v = [&](int t) {
    return KvVec<T>::load(vc + attn::kv_offset(table, start + t, block_size, n_kv_heads, kvh, D) + l * VEC);
  };
  if constexpr (kVEarly) {
#pragma unroll
    for (int u = 0; u < kUnrollV; ++u) {
      const int t = u * TPS + warp * TPW + tw;
      vpre[u] = t < n && start + t != len - 1 ? load_v(t) : KvVec<T>::zero();
    }
  }

  pdl_trigger();
  pdl_wait();
  if (len <= 0) {
    if (part == 0)
      for (int i = tid; i < GM * D; i += kThreads)
        out[(int64_t(b) * n_heads + h0) * D + i] = __float2bfloat16(0.f);
    return;
  }
  if (tb0 < n_tiles) load_k(tb0, 2);
  if constexpr (kVEarly) {
#pragma unroll
    for (int u = 0; u < kUnrollV; ++u) {
      const int t = u * TPS + warp * TPW + tw;
      if (t < n && start + t == len - 1) vpre[u] = load_v(t);
    }
  }

  // q's B fragments: head h0 + g (zero for g >= GM), the same dim permutation as K's.
  uint32_t qb[J][KB][2];
  {
    const bool has = g < GM;
    const bf16* qr = q + int64_t(b) * q_stride + int64_t(h0 + (has ? g : 0)) * D;
#pragma unroll
    for (int j = 0; j < J; ++j) {
      if constexpr (!kF16) {
        const uint4 v = has ? __ldg(reinterpret_cast<const uint4*>(qr + 4 * E * j + E * c))
                            : make_uint4(0, 0, 0, 0);
        const uint32_t* w = reinterpret_cast<const uint32_t*>(&v);
#pragma unroll
        for (int i = 0; i < KB; ++i) {
          qb[j][i][0] = w[2 * i];
          qb[j][i][1] = w[2 * i + 1];
        }
      } else {
        float f[16];
#pragma unroll
        for (int hlf = 0; hlf < 2; ++hlf) {
          const uint4 v = has ? __ldg(reinterpret_cast<const uint4*>(qr + 4 * E * j + E * c + 8 * hlf))
                              : make_uint4(0, 0, 0, 0);
          unpack8(v, f + 8 * hlf);
        }
#pragma unroll
        for (int i = 0; i < KB; ++i) {
          qb[j][i][0] = f16x2(f[4 * i], f[4 * i + 1]);
          qb[j][i][1] = f16x2(f[4 * i + 2], f[4 * i + 3]);
        }
      }
    }
  }
  const float ls = scale * attn::kv_scale(k_scale_p, dt);

  // Pass 1: logits into s_p.
  for (int tb = tb0; tb < n_tiles; tb += kWarps * kNT) {
    if (tb != tb0) load_k(tb, 0);
#pragma unroll
    for (int i = 0; i < kNT; ++i) {
      if (tb + i >= n_tiles) break;
      float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int j = 0; j < J; ++j)
#pragma unroll
        for (int k = 0; k < KB; ++k) {
          uint32_t a[4];
          a_frag<T>(kr[i][0][j], kr[i][1][j], k, a);
          mma16816(d, a, qb[j][k][0], qb[j][k][1], kF16);
        }
      const int r0 = (tb + i) * kTile + g, r1 = r0 + 8;
      // d0, d1: row r0, heads 2c, 2c+1; d2, d3: row r1.
      if (2 * c < GM) {
        if (r0 < n) s_p[2 * c][r0] = d[0] * ls;
        if (r1 < n) s_p[2 * c][r1] = d[2] * ls;
      }
      if (2 * c + 1 < GM) {
        if (r0 < n) s_p[2 * c + 1][r0] = d[1] * ls;
        if (r1 < n) s_p[2 * c + 1][r1] = d[3] * ls;
      }
    }
  }
  for (int i = tid; i < GM * D; i += kThreads) (&s_out[0][0])[i] = 0.f;
  __syncthreads();

  // Pass 2: one warp per head.
  attn::partition_softmax<GM, kP, kWarps>(s_p, n, s_m, s_l, warp, lane);
  __syncthreads();

  // Pass 3: acc[h][:] = sum_t p[h][t] v[t][:]; token of (base, u) = base + u*TPS + warp*TPW + tw.
  float acc[GM][VEC];
#pragma unroll
  for (int hh = 0; hh < GM; ++hh)
#pragma unroll
    for (int v = 0; v < VEC; ++v) acc[hh][v] = 0.f;
  for (int base = 0; base < n; base += kStepV) {
    RawV vv[kUnrollV];
#pragma unroll
    for (int u = 0; u < kUnrollV; ++u) {
      const int t = base + u * TPS + warp * TPW + tw;
      if constexpr (kVEarly) vv[u] = vpre[u];  // base is 0: n <= kP <= kStepV
      else vv[u] = t < n ? load_v(t) : KvVec<T>::zero();
    }
    attn::accumulate_pv<T>(vv, s_p, base + warp * TPW + tw, TPS, n, acc);
  }
  attn::reduce_acc_to_smem<GM, VEC, LPT, D>(acc, s_out, lane);
  __syncthreads();

  const float vs = attn::kv_scale(v_scale_p, dt);
  const int np = (len + kP - 1) / kP;
  if (np == 1) {
    for (int i = tid; i < GM * D; i += kThreads) {
      const int hh = i / D, dd = i % D;
      out[(int64_t(b) * n_heads + h0 + hh) * D + dd] = __float2bfloat16(s_out[hh][dd] * vs / s_l[hh]);
    }
    return;
  }
  for (int i = tid; i < GM * D; i += kThreads) {
    const int hh = i / D, dd = i % D;
    const int64_t bh = int64_t(b) * n_heads + h0 + hh;
    ws.acc[(bh * num_parts + part) * D + dd] = s_out[hh][dd] * vs;
  }
  if (tid < GM) {
    const int64_t bh = int64_t(b) * n_heads + h0 + tid;
    ws.ml[(bh * num_parts + part) * 2] = s_m[tid];
    ws.ml[(bh * num_parts + part) * 2 + 1] = s_l[tid];
  }
  // Publish the partial, then count arrivals; the last CTA sees every partial after its fence.
  __threadfence();
  __syncthreads();
  unsigned* counter = ws.counters + int64_t(b) * gridDim.x + blockIdx.x;
  if (tid == 0) s_last = atomicAdd(counter, 1u) == unsigned(np - 1);
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  for (int hh = warp; hh < GM; hh += kWarps) {
    const int64_t bh = int64_t(b) * n_heads + h0 + hh;
    const float* ml = ws.ml + bh * num_parts * 2;
    const float* pacc = ws.acc + bh * num_parts * D;
    if (np <= 32) {
      // One lane per partition: (max, sum) are read once and every partial accumulator is
      // in flight at the same time, two round trips to L2 in all (the loop below takes one
      // per partition). Same expressions in the same order: the same bits.
      const float mp = lane < np ? __ldcg(ml + 2 * lane) : -INFINITY;
      const float lp = lane < np ? __ldcg(ml + 2 * lane + 1) : 0.f;
      const float m = attn::warp_max<32>(mp);
      const float wp = lane < np ? __expf(mp - m) : 0.f;
      const float total = attn::warp_sum<32>(wp * lp);
      float o[D / 32] = {};
#pragma unroll 4
      for (int p = 0; p < np; ++p) {
        const float w = __shfl_sync(0xffffffffu, wp, p);
#pragma unroll
        for (int k = 0; k < D / 32; ++k) o[k] = fmaf(w, __ldcg(pacc + int64_t(p) * D + lane + 32 * k), o[k]);
      }
#pragma unroll
      for (int k = 0; k < D / 32; ++k) out[bh * D + lane + 32 * k] = __float2bfloat16(o[k] / total);
      continue;
    }
    float m = -INFINITY;
    for (int p = lane; p < np; p += 32) m = fmaxf(m, __ldcg(ml + 2 * p));
    m = attn::warp_max<32>(m);
    float total = 0.f;
    for (int p = lane; p < np; p += 32) total += __expf(__ldcg(ml + 2 * p) - m) * __ldcg(ml + 2 * p + 1);
    total = attn::warp_sum<32>(total);
    for (int dd = lane; dd < D; dd += 32) {
      float o = 0.f;
      for (int p = 0; p < np; ++p) o = fmaf(__expf(__ldcg(ml + 2 * p) - m), __ldcg(pacc + int64_t(p) * D + dd), o);
      out[bh * D + dd] = __float2bfloat16(o / total);
    }
  }
  if (tid == 0) *counter = 0u;
}

template <class T, int D, int GM>
void launch_mma(const DecodeArgs& a) {
  const int group = a.n_heads / a.kv->n_kv_heads;
  const dim3 grid(a.kv->n_kv_heads * (group / GM), a.B, a.num_parts);
  auto kernel = a.part_size == kDecodePartition ? decode_mma_kernel<T, D, GM, kDecodePartition>
                                                : decode_mma_kernel<T, D, GM, 64>;
  launch_pdl("paged_decode_attention (tensor-core split kernel)", kernel, grid, kThreads, 0, a.s,
             a.q, a.q_stride, a.context_lens, a.block_tables, a.mbps,
             static_cast<const T*>(a.kv->k), static_cast<const T*>(a.kv->v), a.kv->block_size,
             a.kv->n_kv_heads, group, a.kv->k_scale, a.kv->v_scale, a.kv->dtype, a.scale,
             a.max_context, a.num_parts, a.ws, a.out);
}

// GM = the largest of {8, 4, 2, 1} dividing the group (an mma's n is 8 heads).
template <class T, int D>
void launch_mma_gm(const DecodeArgs& a) {
  const int group = a.n_heads / a.kv->n_kv_heads;
  if (group % 8 == 0) launch_mma<T, D, 8>(a);
  else if (group % 4 == 0) launch_mma<T, D, 4>(a);
  else if (group % 2 == 0) launch_mma<T, D, 2>(a);
  else launch_mma<T, D, 1>(a);
}

template <class T>
bool launch_mma_d(const DecodeArgs& a) {
  switch (a.kv->head_dim) {
    case 64: launch_mma_gm<T, 64>(a); return true;
    case 128: launch_mma_gm<T, 128>(a); return true;
    default: return false;
  }
}

}  // namespace

bool launch_decode_mma(const DecodeArgs& a) {
  if (a.part_size != kDecodePartition && a.part_size != 64) return false;
  return a.kv->dtype == KvDtype::bf16 ? launch_mma_d<bf16>(a) : launch_mma_d<fp8>(a);
}

}  // namespace twinfer::cuda::decode_impl
