// Paged decode attention, flash-decoding split-K.
//
// Kernel 1, grid (n_kv_heads * chunks, B, P), P = ceil(max_context / kP), 256 threads: one CTA
// takes GM q heads of one GQA group (GM divides the group; chunks = group / GM, 1 for Llama) and
// one partition of kP keys (512, or 64 at batches <= 8), so each K/V vector is read once for
// all GM heads. A token's K row of D elements is D / VEC vectors of VEC = 8 elements (16 bytes
// bf16, 8 bytes fp8): LPT = D / VEC lanes share a token, a warp covers 32 / LPT tokens per step,
// and each thread keeps 64 bytes in flight (batches of 4 bf16 or 8 fp8 loads).
//   pass 1: logits q.k (scale and k_scale folded into q) into shared s_p[GM][kP];
//   pass 2: per head max and sum of exp over the partition (exact, no online rescaling);
//   pass 3: acc[g][:] = sum_t p[g][t] v[t][:], reduced over lanes then warps into s_out.
// A sequence of one partition writes the normalized output directly; otherwise the partition
// writes (acc, max, sum) to the workspace and kernel 2, grid (n_heads, B), combines them with
// weights exp(max_p - max). The grid depends only on host values (graph-capturable); CTAs past a
// sequence's length exit at once. context_len 0 writes zeros (partition 0).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/attention_common.cuh"
#include "kernels/attention_decode_impl.h"
#include "kernels/lab/attention_lab.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda {
namespace {

using attn::fp8;
using attn::KvVec;
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Loads in flight per thread: 4 x 16 bytes for bf16, 8 x 8 bytes for fp8 (same bytes in flight).
template <class T>
constexpr int kUnrollFor = sizeof(T) == 1 ? 8 : 4;
// Partition sizes: kDecodePartition keys for batches that fill the GPU with (head, sequence)
// CTAs; kSmallPartition for batches of at most kSmallBatch sequences, which otherwise leave most
// SMs idle while a few CTAs walk their keys one latency-bound batch after another (batch-1
// decode spent 28 us per layer here, measured by leaving the op out of a graph-replayed step).
constexpr int kSmallPartition = 64;
constexpr int kSmallBatch = 8;

using decode_impl::DecodeArgs;
using decode_impl::Workspace;

template <class T, int D, int GM, int kP>
__global__ __launch_bounds__(kThreads) void decode_split_kernel(
    const bf16* __restrict__ q, int q_stride, const int32_t* __restrict__ context_lens,
    const int32_t* __restrict__ block_tables, int mbps, const T* __restrict__ kc,
    const T* __restrict__ vc, int block_size, int n_kv_heads, int group,
    const float* k_scale_p, const float* v_scale_p, KvDtype dt, float scale, int max_context,
    int num_parts, Workspace ws, bf16* __restrict__ out) {
  constexpr int VEC = KvVec<T>::VEC;
  constexpr int kUnroll = kUnrollFor<T>;
  using Raw = typename KvVec<T>::Raw;
  constexpr int LPT = D / VEC;  // lanes per token
  static_assert(D % VEC == 0 && LPT >= 1 && LPT <= 32 && 32 % LPT == 0, "unsupported head_dim");
  constexpr int TPW = 32 / LPT;        // tokens per warp step
  constexpr int TPS = TPW * kWarps;    // tokens per CTA step
  __shared__ float s_p[GM][kP];        // logits, then probabilities (unnormalized)
  __shared__ float s_out[GM][D];
  __shared__ float s_m[GM], s_l[GM];

  pdl_trigger();
  pdl_wait();  // every CTA waits before its first read (q, lengths) and before any early exit
  const int chunks = group / GM;
  const int kvh = blockIdx.x / chunks;
  const int h0 = kvh * group + (blockIdx.x % chunks) * GM;  // first q head of this CTA
  const int n_heads = n_kv_heads * group;
  const int b = blockIdx.y, part = blockIdx.z;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  // Clamped so lengths beyond the host bounds cannot read past the grid or the table row.
  const int len = min(min(context_lens[b], max_context), mbps * block_size);
  const int start = part * kP;
  if (len <= 0) {
    if (part == 0)
      for (int i = tid; i < GM * D; i += kThreads)
        out[(int64_t(b) * n_heads + h0) * D + i] = __float2bfloat16(0.f);
    return;
  }
  if (start >= len) return;
  const int n = min(kP, len - start);
  const int l = lane % LPT, tw = lane / LPT;
  const int32_t* table = block_tables + int64_t(b) * mbps;

  const float qs = scale * attn::kv_scale(k_scale_p, dt);
  float qf[GM][VEC];
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    const bf16* qr = q + int64_t(b) * q_stride + int64_t(h0 + g) * D + l * VEC;
#pragma unroll
    for (int v = 0; v < VEC; ++v) qf[g][v] = __bfloat162float(qr[v]) * qs;
  }
  for (int i = tid; i < GM * D; i += kThreads) (&s_out[0][0])[i] = 0.f;

  // Batches of kUnroll vectors per thread, all issued before any is consumed. (Double-buffering
  // the batches, and issuing the first V batch before the softmax pass, both measured slower at
  // batch 64 x 4096: 626 and 478 us against 449; the extra registers cost occupancy.)
  // Token of (step base, unroll u) = base + u * TPS + warp * TPW + tw.
  constexpr int kStep = TPS * kUnroll;
  auto load_batch = [&](Raw(&dst)[kUnroll], const T* pool, int base) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * TPS + warp * TPW + tw;
      dst[u] = t < n ? KvVec<T>::load(pool + attn::kv_offset(table, start + t, block_size,
                                                             n_kv_heads, kvh, D) + l * VEC)
                     : KvVec<T>::zero();
    }
  };

  // Pass 1: logits.
  for (int base = 0; base < n; base += kStep) {
    Raw kv[kUnroll];
    load_batch(kv, kc, base);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int t = base + u * TPS + warp * TPW + tw;
      float kf[VEC];
      KvVec<T>::to_f32(kv[u], kf);
#pragma unroll
      for (int g = 0; g < GM; ++g) {
        float dot = 0.f;
#pragma unroll
        for (int v = 0; v < VEC; ++v) dot = fmaf(qf[g][v], kf[v], dot);
        dot = attn::warp_sum<LPT>(dot);  // all lanes take part; xor < LPT stays in the token
        if (l == 0 && t < n) s_p[g][t] = dot;
      }
    }
  }
  __syncthreads();

  // Pass 2: one warp per head.
  attn::partition_softmax<GM, kP, kWarps>(s_p, n, s_m, s_l, warp, lane);
  __syncthreads();

  // Pass 3: probability-weighted V.
  float acc[GM][VEC];
#pragma unroll
  for (int g = 0; g < GM; ++g)
#pragma unroll
    for (int v = 0; v < VEC; ++v) acc[g][v] = 0.f;
  for (int base = 0; base < n; base += kStep) {
    Raw vv[kUnroll];
    load_batch(vv, vc, base);
    attn::accumulate_pv<T>(vv, s_p, base + warp * TPW + tw, TPS, n, acc);
  }
  attn::reduce_acc_to_smem<GM, VEC, LPT, D>(acc, s_out, lane);
  __syncthreads();

  const float vs = attn::kv_scale(v_scale_p, dt);
  const bool single = len <= kP;
  for (int i = tid; i < GM * D; i += kThreads) {
    const int g = i / D, d = i % D;
    const float val = s_out[g][d] * vs;
    const int64_t bh = int64_t(b) * n_heads + h0 + g;
    if (single)
      out[bh * D + d] = __float2bfloat16(val / s_l[g]);
    else
      ws.acc[(bh * num_parts + part) * D + d] = val;
  }
  if (!single && tid < GM) {
    const int64_t bh = int64_t(b) * n_heads + h0 + tid;
    ws.ml[(bh * num_parts + part) * 2] = s_m[tid];
    ws.ml[(bh * num_parts + part) * 2 + 1] = s_l[tid];
  }
}

// grid (n_heads, B), 128 threads, dynamic shared memory num_parts floats (partition weights).
__global__ __launch_bounds__(128) void decode_reduce_kernel(
    const int32_t* __restrict__ context_lens, int mbps, int block_size, int max_context, int D,
    int part_size, int num_parts, Workspace ws, bf16* __restrict__ out) {
  extern __shared__ float s_w[];
  pdl_trigger();
  pdl_wait();  // before the early exit too: this grid's completion must imply the split kernel's
  const int h = blockIdx.x, b = blockIdx.y, n_heads = gridDim.x;
  const int len = min(min(context_lens[b], max_context), mbps * block_size);
  const int np = (len + part_size - 1) / part_size;
  if (np <= 1) return;  // written by the split kernel
  const int64_t bh = int64_t(b) * n_heads + h;
  const float* ml = ws.ml + bh * num_parts * 2;
  float m = -INFINITY;
  for (int p = 0; p < np; ++p) m = fmaxf(m, ml[2 * p]);
  float total = 0.f;
  for (int p = 0; p < np; ++p) total += __expf(ml[2 * p] - m) * ml[2 * p + 1];
  for (int p = threadIdx.x; p < np; p += blockDim.x) s_w[p] = __expf(ml[2 * p] - m) / total;
  __syncthreads();
  const float* acc = ws.acc + bh * num_parts * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int p = 0; p < np; ++p) o = fmaf(s_w[p], acc[int64_t(p) * D + d], o);
    out[bh * D + d] = __float2bfloat16(o);
  }
}

int partition_size(int B) { return B <= kSmallBatch ? kSmallPartition : kDecodePartition; }
int num_partitions(int max_context, int part_size) {
  return (std::max(max_context, 0) + part_size - 1) / part_size;
}

// Measurement switch (docs/gpu.md): TWINFER_ATTN_DECODE=cuda_core runs the CUDA-core kernel
// with its separate combine kernel instead of the tensor-core one.
// Tests pin it with lab::set_decode_attention_tensor_cores.
std::atomic<int> g_tensor_cores{-1};  // -1: from the environment
bool tensor_core_decode() {
  int v = g_tensor_cores.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("TWINFER_ATTN_DECODE");
    if (!e || !std::strcmp(e, "mma")) v = 1;
    else if (!std::strcmp(e, "cuda_core")) v = 0;
    else throw CudaError(std::string("TWINFER_ATTN_DECODE=") + e + ": expected mma or cuda_core");
    g_tensor_cores.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

template <class T, int D, int GM>
void launch_split(const DecodeArgs& a) {
  const int group = a.n_heads / a.kv->n_kv_heads;
  const dim3 grid(a.kv->n_kv_heads * (group / GM), a.B, a.num_parts);
  auto kernel = a.part_size == kSmallPartition ? decode_split_kernel<T, D, GM, kSmallPartition>
                                               : decode_split_kernel<T, D, GM, kDecodePartition>;
  launch_pdl("paged_decode_attention (split kernel)", kernel, grid,
             kThreads, 0, a.s, a.q, a.q_stride, a.context_lens, a.block_tables, a.mbps,
             static_cast<const T*>(a.kv->k), static_cast<const T*>(a.kv->v), a.kv->block_size,
             a.kv->n_kv_heads, group, a.kv->k_scale, a.kv->v_scale, a.kv->dtype, a.scale,
             a.max_context, a.num_parts, a.ws, a.out);
}

// GM = the largest of {8, 4, 2, 1} dividing the group.
template <class T, int D>
void launch_split_gm(const DecodeArgs& a) {
  const int group = a.n_heads / a.kv->n_kv_heads;
  if (group % 8 == 0) {
    launch_split<T, D, 8>(a);
  } else if (group % 4 == 0) {
    launch_split<T, D, 4>(a);
  } else if (group % 2 == 0) {
    launch_split<T, D, 2>(a);
  } else {
    launch_split<T, D, 1>(a);
  }
}

template <class T>
bool launch_split_d(const DecodeArgs& a) {
  switch (a.kv->head_dim) {
    case 16: launch_split_gm<T, 16>(a); return true;
    case 32: launch_split_gm<T, 32>(a); return true;
    case 64: launch_split_gm<T, 64>(a); return true;
    case 128: launch_split_gm<T, 128>(a); return true;
    case 256: launch_split_gm<T, 256>(a); return true;
    default: return false;
  }
}

}  // namespace

namespace lab {
void set_decode_attention_tensor_cores(bool on) { g_tensor_cores.store(on ? 1 : 0); }
}  // namespace lab

size_t decode_attention_counter_bytes(int n_heads) { return decode_impl::counter_bytes(n_heads); }

size_t decode_attention_workspace_bytes(int B, int n_heads, int head_dim, int max_context) {
  // The largest of the two regimes: B sequences in big partitions, or up to kSmallBatch in
  // small ones (a workspace sized for B serves every batch up to B).
  const int small_b = std::min(std::max(B, 0), kSmallBatch);
  const size_t rows = std::max(size_t(std::max(B, 0)) * num_partitions(max_context, kDecodePartition),
                               size_t(small_b) * num_partitions(max_context, kSmallPartition));
  return decode_impl::counter_bytes(n_heads) +
         rows * size_t(std::max(n_heads, 0)) * (size_t(std::max(head_dim, 0)) + 2) * sizeof(float);
}

void paged_decode_attention(const bf16* q, int q_stride, int B, const int32_t* context_lens,
                            const int32_t* block_tables, int max_blocks_per_seq, PagedKV kv,
                            int n_heads, float scale, int max_context, void* workspace,
                            bf16* out, cudaStream_t s) {
  const char* name = "paged_decode_attention";
  auto fail = [&](const std::string& what) { throw CudaError(std::string(name) + ": " + what); };
  attn::check_attention_args(name, q, q_stride, n_heads, kv, out);
  if (B < 0 || B > 65535) fail("B = " + std::to_string(B) + ", expected 0..65535");
  if (B == 0) return;
  if (!context_lens || !block_tables) fail("context_lens and block_tables must be non-null");
  if (max_context <= 0) fail("max_context = " + std::to_string(max_context) + ", expected > 0");
  const int part_size = partition_size(B);
  const int num_parts = num_partitions(max_context, part_size);
  if (num_parts > 12 * 1024)  // reduce kernel keeps one float per partition in shared memory
    fail("max_context = " + std::to_string(max_context) + ", expected <= " +
         std::to_string(12 * 1024 * part_size) + " at batch " + std::to_string(B));
  if (num_parts > 1 && !workspace)
    fail("workspace is null; it needs decode_attention_workspace_bytes() bytes");
  unsigned* counters = static_cast<unsigned*>(workspace);
  float* wsf = workspace ? reinterpret_cast<float*>(static_cast<char*>(workspace) +
                                                     decode_impl::counter_bytes(n_heads))
                         : nullptr;
  const size_t acc_floats = size_t(B) * n_heads * num_parts * kv.head_dim;
  const DecodeArgs a{q, q_stride, B, context_lens, block_tables, max_blocks_per_seq, &kv,
                     n_heads, scale, max_context, part_size, num_parts,
                     Workspace{wsf, wsf ? wsf + acc_floats : nullptr, counters}, out, s};
  if (tensor_core_decode() && B <= decode_impl::kCounterSeqs && decode_impl::launch_decode_mma(a))
    return;
  const bool tiled = kv.dtype == KvDtype::bf16 ? launch_split_d<bf16>(a) : launch_split_d<fp8>(a);
  if (!tiled) {  // head_dim not a power of two: the generic per-head kernel
    lab::paged_decode_attention_v1(q, q_stride, B, context_lens, block_tables, max_blocks_per_seq,
                                   kv, n_heads, scale, max_context, out, s);
    return;
  }
  if (num_parts > 1)
    launch_pdl("paged_decode_attention (reduce kernel)", decode_reduce_kernel, dim3(n_heads, B),
               128, num_parts * sizeof(float), s, context_lens, max_blocks_per_seq, kv.block_size,
               max_context, kv.head_dim, part_size, num_parts, a.ws, out);
}

}  // namespace twinfer::cuda
