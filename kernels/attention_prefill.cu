// Paged prefill (chunk) attention on tensor cores, FlashAttention-2 style.
//
// grid (ceil(max_q_len / 64), n_heads, S), 128 threads (4 warps). A CTA owns 64 query rows of
// one q head of one sequence (the heaviest tiles, last in the sequence, are scheduled first);
// warp w owns rows 16w..16w+15. Q is staged once through shared memory into registers as mma A
// fragments; then key tiles of 64 rows are gathered through the block table into shared memory
// (row stride D + 8 bf16 so ldmatrix rows fall in distinct banks), S = Q K^T and O += P V run
// on mma.sync m16n8k16 (bf16 in, fp32 accumulate), softmax online in fp32 in the log2 domain.
// K and V tiles share the pipeline: K(j+1) is fetched (cp.async) while P V(j) runs, V(j+1)
// while Q K^T(j+1) runs. fp8 tiles are dequantized to bf16 (times the scale) on the way in.
// Row i of sequence s is at position ctx_after[s] - q_len + i and sees keys 0..position; key
// rows past the tile's last needed key are zero-filled so P V never touches unread memory.
#include "kernels/attention_common.cuh"
#include "kernels/lab/attention_lab.h"

namespace twinfer::cuda {
namespace {

using attn::fp8;
constexpr int kRows = 64;     // query rows per CTA
constexpr int kKeys = 64;     // keys per tile
constexpr int kThreads = 128;

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// d (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col).
__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Loads key rows j0..j0+63 (those < n_keys; the rest zero) of kv head kvh into tile [64][D+8].
// Chunks of 8 elements: 64 * D / 8 per tile, spread over the 128 threads.
template <class T, int D>
__device__ __forceinline__ void load_kv_tile(bf16* tile, const T* __restrict__ cache,
                                             const int32_t* table, int j0, int n_keys,
                                             int block_size, int n_kv_heads, int kvh,
                                             float scale) {
  constexpr int CPR = D / 8;  // chunks per row
  constexpr int LD = D + 8;
  for (int c = threadIdx.x; c < kKeys * CPR; c += kThreads) {
    const int r = c / CPR, col = (c % CPR) * 8;
    bf16* dst = tile + r * LD + col;
    const int t = j0 + r;
    if (t >= n_keys) {
      *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      continue;
    }
    const T* src = cache + attn::kv_offset(table, t, block_size, n_kv_heads, kvh, D) + col;
    if constexpr (sizeof(T) == 2) {
      cp_async16(dst, src);
    } else {
      const uint2 raw = __ldg(reinterpret_cast<const uint2*>(src));
      float f[8];
      attn::fp8x4_to_f32(raw.x, f);
      attn::fp8x4_to_f32(raw.y, f + 4);
      uint4 o;
      o.x = pack_bf16(f[0] * scale, f[1] * scale);
      o.y = pack_bf16(f[2] * scale, f[3] * scale);
      o.z = pack_bf16(f[4] * scale, f[5] * scale);
      o.w = pack_bf16(f[6] * scale, f[7] * scale);
      *reinterpret_cast<uint4*>(dst) = o;
    }
  }
}

template <class T, int D>
__global__ __launch_bounds__(kThreads) void prefill_kernel(
    const bf16* __restrict__ q, int q_stride, const int32_t* __restrict__ q_start,
    const int32_t* __restrict__ ctx_after, const int32_t* __restrict__ block_tables, int mbps,
    const T* __restrict__ kc, const T* __restrict__ vc, int block_size, int n_kv_heads,
    int group, const float* k_scale_p, const float* v_scale_p, KvDtype dt, float scale_log2,
    bf16* __restrict__ out) {
  static_assert(D % 16 == 0 && D <= 128, "tiled prefill needs head_dim % 16 == 0, <= 128");
  constexpr int LD = D + 8;
  constexpr int KS = D / 16;     // k-steps of Q K^T
  constexpr int NT = D / 8;      // n-tiles of O
  constexpr int ST = kKeys / 8;  // n-tiles of S
  __shared__ __align__(16) bf16 sK[kKeys * LD];
  __shared__ __align__(16) bf16 sV[kKeys * LD];

  const int s = blockIdx.z, h = blockIdx.y, n_heads = gridDim.y;
  const int qt = gridDim.x - 1 - blockIdx.x;
  const int q0 = q_start[s], q_len = q_start[s + 1] - q0;
  const int row0 = qt * kRows;
  if (row0 >= q_len) return;
  const int kvh = h / group;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int pos0 = ctx_after[s] - q_len + row0;  // position of the tile's first row
  // Keys needed by the tile: 0 .. position of its last valid row.
  const int n_keys = min(pos0 + min(kRows, q_len - row0), mbps * block_size);
  const int32_t* table = block_tables + int64_t(s) * mbps;
  const float ks = attn::kv_scale(k_scale_p, dt), vs = attn::kv_scale(v_scale_p, dt);

  // Q tile [64][D] through sK into A fragments: qa[k-step][4].
  {
    constexpr int CPR = D / 8;
    for (int c = tid; c < kRows * CPR; c += kThreads) {
      const int r = c / CPR, col = (c % CPR) * 8;
      bf16* dst = sK + r * LD + col;
      if (row0 + r < q_len)
        cp_async16(dst, q + int64_t(q0 + row0 + r) * q_stride + int64_t(h) * D + col);
      else
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
  }
  uint32_t qa[KS][4];
  {
    // ldmatrix x4 matrices: (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (8-15, 8-15).
    const int r = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
    const int cofs = (lane / 16) * 8;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) ldmatrix_x4(qa[kk], sK + r * LD + kk * 16 + cofs);
  }
  __syncthreads();

  const int n_tiles = n_keys > 0 ? (n_keys + kKeys - 1) / kKeys : 0;
  if (n_tiles > 0) {
    load_kv_tile<T, D>(sK, kc, table, 0, n_keys, block_size, n_kv_heads, kvh, ks);
    cp_async_commit();
    load_kv_tile<T, D>(sV, vc, table, 0, n_keys, block_size, n_kv_heads, kvh, vs);
    cp_async_commit();
  }

  float o[NT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  // This thread's rows: g and g + 8 of the warp's 16 (mma C layout), columns 2c, 2c + 1.
  const int g = lane / 4, c4 = lane % 4;
  const int pos_a = pos0 + warp * 16 + g, pos_b = pos_a + 8;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

  for (int j = 0; j < n_tiles; ++j) {
    const int j0 = j * kKeys;
    cp_async_wait<1>();  // K(j) landed; V(j) may be in flight
    __syncthreads();
    float sacc[ST][4];
#pragma unroll
    for (int i = 0; i < ST; ++i) sacc[i][0] = sacc[i][1] = sacc[i][2] = sacc[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
#pragma unroll
      for (int nt = 0; nt < ST; nt += 2) {
        // Matrices: (keys nt*8.., dims lo), (keys nt*8.., dims hi), (keys +8, lo), (+8, hi).
        const int mat = lane / 8;
        const int key = nt * 8 + (mat / 2) * 8 + lane % 8;
        uint32_t b[4];
        ldmatrix_x4(b, sK + key * LD + kk * 16 + (mat % 2) * 8);
        mma_bf16(sacc[nt], qa[kk], b[0], b[1]);
        mma_bf16(sacc[nt + 1], qa[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with sK
    if (j + 1 < n_tiles)
      load_kv_tile<T, D>(sK, kc, table, j0 + kKeys, n_keys, block_size, n_kv_heads, kvh, ks);
    cp_async_commit();

    // Scale to the log2 domain and mask keys past each row's position (only the tiles that
    // reach past the tile's first row need it).
    const bool need_mask = j0 + kKeys - 1 > pos0 + warp * 16;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < ST; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = j0 + nt * 8 + 2 * c4 + (e % 2);
        const int pos = e < 2 ? pos_a : pos_b;
        float x = sacc[nt][e] * scale_log2;
        if (need_mask && key > pos) x = -INFINITY;
        sacc[nt][e] = x;
      }
      mx_a = fmaxf(mx_a, fmaxf(sacc[nt][0], sacc[nt][1]));
      mx_b = fmaxf(mx_b, fmaxf(sacc[nt][2], sacc[nt][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    // A row with every key so far masked keeps max -inf; use 0 so exp2 gives 0, not NaN.
    const float ref_a = mn_a == -INFINITY ? 0.f : mn_a;
    const float ref_b = mn_b == -INFINITY ? 0.f : mn_b;
    const float corr_a = exp2f(m_a - ref_a), corr_b = exp2f(m_b - ref_b);
    m_a = mn_a;
    m_b = mn_b;
    l_a *= corr_a;
    l_b *= corr_b;
#pragma unroll
    for (int i = 0; i < NT; ++i) {
      o[i][0] *= corr_a;
      o[i][1] *= corr_a;
      o[i][2] *= corr_b;
      o[i][3] *= corr_b;
    }
    // P as A fragments: k-step kk covers S n-tiles 2kk (a0, a1) and 2kk + 1 (a2, a3).
    uint32_t pa[kKeys / 16][4];
#pragma unroll
    for (int nt = 0; nt < ST; ++nt) {
      const float p0 = exp2f(sacc[nt][0] - ref_a), p1 = exp2f(sacc[nt][1] - ref_a);
      const float p2 = exp2f(sacc[nt][2] - ref_b), p3 = exp2f(sacc[nt][3] - ref_b);
      l_a += p0 + p1;
      l_b += p2 + p3;
      pa[nt / 2][(nt % 2) * 2] = pack_bf16(p0, p1);
      pa[nt / 2][(nt % 2) * 2 + 1] = pack_bf16(p2, p3);
    }

    cp_async_wait<1>();  // V(j) landed; K(j+1) may be in flight
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        // Transposed matrices: (keys lo, dims nt*8..), (keys hi, same), (keys lo, dims +8), (hi, +8).
        const int mat = lane / 8;
        const int key = kk * 16 + (mat % 2) * 8 + lane % 8;
        uint32_t b[4];
        ldmatrix_x4_trans(b, sV + key * LD + nt * 8 + (mat / 2) * 8);
        mma_bf16(o[nt], pa[kk], b[0], b[1]);
        mma_bf16(o[nt + 1], pa[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with sV
    if (j + 1 < n_tiles)
      load_kv_tile<T, D>(sV, vc, table, j0 + kKeys, n_keys, block_size, n_kv_heads, kvh, vs);
    cp_async_commit();
  }
  cp_async_wait<0>();

  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
  const int ra = row0 + warp * 16 + g, rb = ra + 8;
  bf16* out_a = out + (int64_t(q0 + ra) * n_heads + h) * D;
  bf16* out_b = out + (int64_t(q0 + rb) * n_heads + h) * D;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int d = nt * 8 + 2 * c4;
    if (ra < q_len)
      *reinterpret_cast<uint32_t*>(out_a + d) = pack_bf16(o[nt][0] * inv_a, o[nt][1] * inv_a);
    if (rb < q_len)
      *reinterpret_cast<uint32_t*>(out_b + d) = pack_bf16(o[nt][2] * inv_b, o[nt][3] * inv_b);
  }
}

template <class T, int D>
void launch(const bf16* q, int q_stride, int S, const int32_t* q_start, const int32_t* ctx_after,
            const int32_t* block_tables, int mbps, const PagedKV& kv, int n_heads, float scale,
            int max_q_len, bf16* out, cudaStream_t s) {
  const dim3 grid((max_q_len + kRows - 1) / kRows, n_heads, S);
  constexpr float kLog2e = 1.4426950408889634f;
  prefill_kernel<T, D><<<grid, kThreads, 0, s>>>(
      q, q_stride, q_start, ctx_after, block_tables, mbps, static_cast<const T*>(kv.k),
      static_cast<const T*>(kv.v), kv.block_size, kv.n_kv_heads, n_heads / kv.n_kv_heads,
      kv.k_scale, kv.v_scale, kv.dtype, scale * kLog2e, out);
}

template <class T>
bool launch_d(const bf16* q, int q_stride, int S, const int32_t* q_start,
              const int32_t* ctx_after, const int32_t* block_tables, int mbps,
              const PagedKV& kv, int n_heads, float scale, int max_q_len, bf16* out,
              cudaStream_t s) {
  switch (kv.head_dim) {
#define TWINFER_PREFILL_CASE(DIM)                                                              \
  case DIM:                                                                                    \
    launch<T, DIM>(q, q_stride, S, q_start, ctx_after, block_tables, mbps, kv, n_heads, scale, \
                   max_q_len, out, s);                                                         \
    return true;
    TWINFER_PREFILL_CASE(16)
    TWINFER_PREFILL_CASE(32)
    TWINFER_PREFILL_CASE(64)
    TWINFER_PREFILL_CASE(128)
#undef TWINFER_PREFILL_CASE
    default: return false;
  }
}

}  // namespace

void paged_prefill_attention(const bf16* q, int q_stride, int S, const int32_t* q_start,
                             const int32_t* ctx_after, const int32_t* block_tables,
                             int max_blocks_per_seq, PagedKV kv, int n_heads, float scale,
                             int max_q_len, bf16* out, cudaStream_t s) {
  const char* name = "paged_prefill_attention";
  auto fail = [&](const std::string& what) { throw CudaError(std::string(name) + ": " + what); };
  attn::check_attention_args(name, q, q_stride, n_heads, kv, out);
  if (S < 0 || S > 65535) fail("S = " + std::to_string(S) + ", expected 0..65535");
  if (n_heads > 65535) fail("n_heads = " + std::to_string(n_heads) + ", expected <= 65535");
  if (max_q_len < 0) fail("max_q_len = " + std::to_string(max_q_len) + ", expected >= 0");
  if (S == 0 || max_q_len == 0) return;
  if (!q_start || !ctx_after || !block_tables)
    fail("q_start, ctx_after and block_tables must be non-null");
  // The tiled kernel reads q rows with 16-byte copies and writes out in bf16 pairs.
  const bool aligned = q_stride % 8 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 4 == 0;
  const bool tiled =
      aligned && (kv.dtype == KvDtype::bf16
                      ? launch_d<bf16>(q, q_stride, S, q_start, ctx_after, block_tables,
                                       max_blocks_per_seq, kv, n_heads, scale, max_q_len, out, s)
                      : launch_d<fp8>(q, q_stride, S, q_start, ctx_after, block_tables,
                                      max_blocks_per_seq, kv, n_heads, scale, max_q_len, out, s));
  if (!tiled) {  // other head_dims or unaligned q: the generic per-row kernel
    lab::paged_prefill_attention_v1(q, q_stride, S, q_start, ctx_after, block_tables,
                                    max_blocks_per_seq, kv, n_heads, scale, max_q_len, out, s);
    return;
  }
  check_launch(name);
}

}  // namespace twinfer::cuda
