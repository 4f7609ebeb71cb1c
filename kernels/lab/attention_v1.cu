// Kernel lab, attention v1: one warp per (query row, q head). Each lane owns dims lane,
// lane + 32, ... (head_dim <= 256 gives at most 8 per lane); keys are visited one at a time
// with an online softmax in fp32. Scalar loads, no shared memory: slow but simple, and the
// generic path of the launchers for head_dims the tiled kernels do not instantiate.
#include "kernels/attention_common.cuh"
#include "kernels/lab/attention_lab.h"

namespace twinfer::cuda::lab {
namespace {

using attn::fp8;
constexpr int kMaxPerLane = 8;  // 256 / 32

// Attends one query row (q_row: head_dim bf16) to keys 0..n_keys-1 of the sequence whose
// block-table row is `table`; writes head_dim bf16 to out_row (zeros when n_keys <= 0).
template <class T>
__device__ void warp_attend_row(const bf16* q_row, int n_keys, const int32_t* table,
                                const T* kc, const T* vc, int block_size, int n_kv_heads,
                                int kvh, int D, float scale, float k_scale, float v_scale,
                                bf16* out_row) {
  const int lane = threadIdx.x % 32;
  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < D ? __bfloat162float(q_row[d]) * scale * k_scale : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int t = 0; t < n_keys; ++t) {
    const int64_t off = attn::kv_offset(table, t, block_size, n_kv_heads, kvh, D);
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < D) s += qv[i] * attn::load_f32(kc + off + d);
    }
    s = attn::warp_sum<32>(s);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new);  // m = -inf on the first key: 0
    const float p = __expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int d = lane + 32 * i;
      const float v = d < D ? attn::load_f32(vc + off + d) * v_scale : 0.f;
      acc[i] = acc[i] * corr + p * v;
    }
    m = m_new;
  }
  const float inv = n_keys > 0 ? 1.f / l : 0.f;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < D) out_row[d] = __float2bfloat16(acc[i] * inv);
  }
}

// grid (n_heads, B), block 32.
template <class T>
__global__ void decode_v1_kernel(const bf16* q, int q_stride, const int32_t* context_lens,
                                 const int32_t* block_tables, int mbps, const T* kc, const T* vc,
                                 int block_size, int n_kv_heads, int D, int group,
                                 const float* k_scale, const float* v_scale, KvDtype dt,
                                 float scale, int max_context, bf16* out) {
  const int h = blockIdx.x, b = blockIdx.y, n_heads = gridDim.x;
  // Clamped so a length beyond the host bounds cannot read past the block-table row.
  const int len = min(min(context_lens[b], max_context), mbps * block_size);
  warp_attend_row(q + int64_t(b) * q_stride + int64_t(h) * D, len,
                  block_tables + int64_t(b) * mbps, kc, vc, block_size, n_kv_heads, h / group, D,
                  scale, attn::kv_scale(k_scale, dt), attn::kv_scale(v_scale, dt),
                  out + (int64_t(b) * n_heads + h) * D);
}

constexpr int kRowsPerCta = 4;

// grid (ceil(max_q_len / 4), n_heads, S), block 128: warp w takes row blockIdx.x * 4 + w.
template <class T>
__global__ void prefill_v1_kernel(const bf16* q, int q_stride, const int32_t* q_start,
                                  const int32_t* ctx_after, const int32_t* block_tables, int mbps,
                                  const T* kc, const T* vc, int block_size, int n_kv_heads, int D,
                                  int group, const float* k_scale, const float* v_scale,
                                  KvDtype dt, float scale, bf16* out) {
  const int s = blockIdx.z, h = blockIdx.y, n_heads = gridDim.y;
  const int row = blockIdx.x * kRowsPerCta + threadIdx.x / 32;
  const int q0 = q_start[s], q_len = q_start[s + 1] - q0;
  if (row >= q_len) return;  // warp-uniform
  const int pos = ctx_after[s] - q_len + row;
  const int n_keys = min(pos + 1, mbps * block_size);
  warp_attend_row(q + int64_t(q0 + row) * q_stride + int64_t(h) * D, n_keys,
                  block_tables + int64_t(s) * mbps, kc, vc, block_size, n_kv_heads, h / group, D,
                  scale, attn::kv_scale(k_scale, dt), attn::kv_scale(v_scale, dt),
                  out + (int64_t(q0 + row) * n_heads + h) * D);
}

}  // namespace

void paged_decode_attention_v1(const bf16* q, int q_stride, int B, const int32_t* context_lens,
                               const int32_t* block_tables, int max_blocks_per_seq, PagedKV kv,
                               int n_heads, float scale, int max_context, bf16* out,
                               cudaStream_t s) {
  const char* name = "paged_decode_attention_v1";
  attn::check_attention_args(name, q, q_stride, n_heads, kv, out);
  if (B < 0 || B > 65535) throw CudaError(std::string(name) + ": B = " + std::to_string(B) + ", expected 0..65535");
  if (B == 0) return;
  if (!context_lens || !block_tables) throw CudaError(std::string(name) + ": context_lens and block_tables must be non-null");
  const int group = n_heads / kv.n_kv_heads;
  const dim3 grid(n_heads, B);
  if (kv.dtype == KvDtype::bf16) {
    decode_v1_kernel<bf16><<<grid, 32, 0, s>>>(
        q, q_stride, context_lens, block_tables, max_blocks_per_seq, static_cast<const bf16*>(kv.k),
        static_cast<const bf16*>(kv.v), kv.block_size, kv.n_kv_heads, kv.head_dim, group,
        kv.k_scale, kv.v_scale, kv.dtype, scale, max_context, out);
  } else {
    decode_v1_kernel<fp8><<<grid, 32, 0, s>>>(
        q, q_stride, context_lens, block_tables, max_blocks_per_seq, static_cast<const fp8*>(kv.k),
        static_cast<const fp8*>(kv.v), kv.block_size, kv.n_kv_heads, kv.head_dim, group,
        kv.k_scale, kv.v_scale, kv.dtype, scale, max_context, out);
  }
  check_launch(name);
}

void paged_prefill_attention_v1(const bf16* q, int q_stride, int S, const int32_t* q_start,
                                const int32_t* ctx_after, const int32_t* block_tables,
                                int max_blocks_per_seq, PagedKV kv, int n_heads, float scale,
                                int max_q_len, bf16* out, cudaStream_t s) {
  const char* name = "paged_prefill_attention_v1";
  attn::check_attention_args(name, q, q_stride, n_heads, kv, out);
  if (S < 0 || S > 65535) throw CudaError(std::string(name) + ": S = " + std::to_string(S) + ", expected 0..65535");
  if (n_heads > 65535) throw CudaError(std::string(name) + ": n_heads = " + std::to_string(n_heads) + ", expected <= 65535");
  if (max_q_len < 0) throw CudaError(std::string(name) + ": max_q_len = " + std::to_string(max_q_len) + ", expected >= 0");
  if (S == 0 || max_q_len == 0) return;
  if (!q_start || !ctx_after || !block_tables) throw CudaError(std::string(name) + ": q_start, ctx_after and block_tables must be non-null");
  const int group = n_heads / kv.n_kv_heads;
  const dim3 grid((max_q_len + kRowsPerCta - 1) / kRowsPerCta, n_heads, S);
  if (kv.dtype == KvDtype::bf16) {
    prefill_v1_kernel<bf16><<<grid, 32 * kRowsPerCta, 0, s>>>(
        q, q_stride, q_start, ctx_after, block_tables, max_blocks_per_seq,
        static_cast<const bf16*>(kv.k), static_cast<const bf16*>(kv.v), kv.block_size,
        kv.n_kv_heads, kv.head_dim, group, kv.k_scale, kv.v_scale, kv.dtype, scale, out);
  } else {
    prefill_v1_kernel<fp8><<<grid, 32 * kRowsPerCta, 0, s>>>(
        q, q_stride, q_start, ctx_after, block_tables, max_blocks_per_seq,
        static_cast<const fp8*>(kv.k), static_cast<const fp8*>(kv.v), kv.block_size,
        kv.n_kv_heads, kv.head_dim, group, kv.k_scale, kv.v_scale, kv.dtype, scale, out);
  }
  check_launch(name);
}

}  // namespace twinfer::cuda::lab
