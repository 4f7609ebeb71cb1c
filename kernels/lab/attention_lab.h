// Kernel-lab versions of the paged attention kernels. v1 is the simple reference-style GPU
// version (one warp per query row and head, scalar loads, online softmax over every key; any
// head_dim that is a multiple of 8 up to 256). The fast versions are the launchers of ops.h
// (kernels/attention_decode.cu, kernels/attention_prefill.cu), which also fall back to v1 for
// head_dims their tiled kernels do not instantiate. Same arguments and layouts as in ops.h.
#pragma once
#include "kernels/ops.h"

namespace twinfer::cuda::lab {

// Decode, v1: grid (n_heads, B), one warp each; ignores max_context except as a clamp of the
// lengths and needs no workspace.
void paged_decode_attention_v1(const bf16* q, int q_stride, int B, const int32_t* context_lens,
                               const int32_t* block_tables, int max_blocks_per_seq, PagedKV kv,
                               int n_heads, float scale, int max_context, bf16* out,
                               cudaStream_t s);

// The fast decode launcher's kernel for head_dim 64 and 128: tensor cores (the default) or the
// CUDA-core split kernel with its separate combine (TWINFER_ATTN_DECODE=cuda_core).
void set_decode_attention_tensor_cores(bool on);

// Prefill, v1: grid (ceil(max_q_len / 4), n_heads, S), one warp per query row.
void paged_prefill_attention_v1(const bf16* q, int q_stride, int S, const int32_t* q_start,
                                const int32_t* ctx_after, const int32_t* block_tables,
                                int max_blocks_per_seq, PagedKV kv, int n_heads, float scale,
                                int max_q_len, bf16* out, cudaStream_t s);

}  // namespace twinfer::cuda::lab
