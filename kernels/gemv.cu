// The small-T GEMM launchers: the kernel lab's v2 where its alignment assumptions hold, v1
// (slow but shape-agnostic) otherwise. See kernels/lab/NOTES_gemm.md for the measurements.
#include "kernels/lab/gemv_lab.h"

namespace twinfer::cuda {

void gemv_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  if (lab::gemv_v2_applicable(x, in, W)) lab::gemv_v2(x, T, in, W, out, y, s);
  else lab::gemv_v1(x, T, in, W, out, y, s);
}

void gemv_f32(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  if (lab::gemv_v2_applicable(x, in, W)) lab::gemv_v2(x, T, in, W, out, y, s);
  else lab::gemv_v1(x, T, in, W, out, y, s);
}

bool gemv_gate_up_silu_applicable(const bf16* x, int in, const bf16* W_gu) {
  return lab::gemv_v2_applicable(x, in, W_gu);
}

void gemv_gate_up_silu_bf16(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                            cudaStream_t s) {
  lab::gemv_v2_gate_up_silu(x, T, in, W_gu, I, act, s);  // throws naming the broken requirement
}

void gemv_norm_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                    int out, bf16* y, cudaStream_t s) {
  lab::gemv_v2_norm(x, norm_w, eps, T, in, W, out, y, s);
}
void gemv_norm_gate_up_silu_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                                 const bf16* W_gu, int I, bf16* act, cudaStream_t s) {
  lab::gemv_v2_norm_gate_up_silu(x, norm_w, eps, T, in, W_gu, I, act, s);
}
void gemv_add_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                   cudaStream_t s) {
  lab::gemv_v2_add(x, T, in, W, out, residual, s);
}

}  // namespace twinfer::cuda
