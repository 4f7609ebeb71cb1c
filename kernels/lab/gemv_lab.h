// Kernel lab for the small-T GEMM path: y[T, out] = x[T, in] W^T, W [out, in] bf16 row-major,
// fp32 accumulation. v1 is the simple reference version (any shape, any alignment); v2 is the
// bandwidth-bound version the launcher uses. Both write bf16 or fp32 outputs.
#pragma once
#include "kernels/ops.h"

namespace twinfer::cuda::lab {

// v1: one warp per output row, scalar coalesced loads of W, one pass over W per input row.
// Any T >= 0, in > 0, out > 0 and alignment.
void gemv_v1(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s);
void gemv_v1(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s);

// v2: each warp owns R consecutive output rows (R = 1, 2 or 4, picked so the grid fills the
// GPU) and streams them with 16-byte no-L1-allocate loads, 2 vectors per row in flight per
// lane; x chunks come through L1 (they are reused by every warp); T is processed in chunks of
// up to 8 rows, each a compile-time size so the accumulators stay in registers.
// Needs in % 8 == 0 and x, W 16-byte aligned: v2_applicable() says whether it does.
bool gemv_v2_applicable(const bf16* x, int in, const bf16* W);

// Epilogue/prologue fusions of v2 for the decode fast path (kernel arguments).
struct GemvFusion {
  const bf16* norm_w = nullptr;  // fused RMSNorm weight [in]
  float eps = 0.f;
};
// y = rms_norm(x; norm_w, eps) W^T, the norm computed in each block's prologue with the
// roundings of rms_norm (its 1/rms may differ from rms_norm's in the last bit: another sum order).
void gemv_v2_norm(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                  int out, bf16* y, cudaStream_t s);
void gemv_v2_norm_gate_up_silu(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                               const bf16* W_gu, int I, bf16* act, cudaStream_t s);
// residual[T, out] = bf16(residual + bf16(x W^T)): the projection and add_rms_norm's add.
void gemv_v2_add(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                 cudaStream_t s);

void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s);
void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s);
// v2 with the SiLU-and-multiply epilogue: W_gu [2I, in] (gate rows, then up rows), act [T, I];
// each warp owns gate rows and their up rows (R/2 pairs). Same requirements as v2.
void gemv_v2_gate_up_silu(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                          cudaStream_t s);

// v3: v2's per-row arithmetic (same bits) with W streamed into shared memory by TMA bulk copies
// (a ring of 16 KB stages per block, a producer warp, 4 consumer warps, persistent blocks), so
// the bytes in flight no longer depend on registers and warp count. sm_90+, T <= 2, same
// alignment needs as v2; gemv_v3_applicable() says whether it runs here.
constexpr int kGemvV3MaxT = 2;
bool gemv_v3_supported();  // the device is sm_90+ and this build carries sm_90 code
bool gemv_v3_applicable(const bf16* x, int T, int in, const bf16* W);
void gemv_v3(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s);
void gemv_v3(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s);
void gemv_v3_gate_up_silu(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                          cudaStream_t s);
void gemv_v3_norm(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                  int out, bf16* y, cudaStream_t s);
void gemv_v3_norm_gate_up_silu(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                               const bf16* W_gu, int I, bf16* act, cudaStream_t s);
void gemv_v3_add(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                 cudaStream_t s);

}  // namespace twinfer::cuda::lab

namespace twinfer::cuda {
// The fp32-output twin of gemv_bf16 (Gemm::run_f32 takes it for small T, e.g. lm_head logits).
void gemv_f32(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s);
}  // namespace twinfer::cuda
