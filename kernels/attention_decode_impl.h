// Internal to the paged decode attention launchers (kernels/attention_decode*.cu): the argument
// bundle and the workspace layout the split kernels share.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace twinfer::cuda::decode_impl {

// Workspace layout: first kCounterSeqs x n_heads arrival counters (unsigned) for the in-kernel
// combine, one per (sequence, CTA column), zero between launches (the last CTA of a sequence
// resets its counter); then acc [B, n_heads, P, D] floats and (max, sum) [B, n_heads, P, 2]
// floats. The counters come first at a size independent of B, so a call at one batch never
// writes partials over the counters of a call at another (graphs of several batch sizes share
// one workspace).
struct Workspace {
  float* acc;
  float* ml;
  unsigned* counters;
};

struct DecodeArgs {
  const bf16* q;
  int q_stride, B;
  const int32_t* context_lens;
  const int32_t* block_tables;
  int mbps;
  const PagedKV* kv;
  int n_heads;
  float scale;
  int max_context, part_size, num_parts;
  Workspace ws;
  bf16* out;
  cudaStream_t s;
};

// Counters per sequence: one per (kv head, q-head chunk) CTA column; n_heads bounds every
// variant. Batches above kCounterSeqs take the two-kernel path.
constexpr int kCounterSeqs = 1024;
inline size_t counter_bytes(int n_heads) {
  return size_t(kCounterSeqs) * size_t(n_heads > 0 ? n_heads : 0) * sizeof(unsigned);
}

// The tensor-core variant (kernels/attention_decode_mma.cu): false when the shape is not one it
// handles (head_dim not in {64, 128, 256}), and the caller takes the CUDA-core kernel.
bool launch_decode_mma(const DecodeArgs& a);

}  // namespace twinfer::cuda::decode_impl
