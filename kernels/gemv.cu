// The small-T GEMM launchers: the kernel lab's v2 where its alignment assumptions hold, v1 (slow
// but shape-agnostic) otherwise; v3 (TMA weight stream) on request. See kernels/lab/NOTES_gemm.md
// for the measurements (v3 measured slower than v2 in the decode step, so it is not the default).
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/lab/gemv_lab.h"

namespace twinfer::cuda {
namespace {

// Measurement switch (docs/gpu.md): TWINFER_GEMV=v3 takes the TMA-streamed kernel where it applies.
bool v3_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("TWINFER_GEMV");
    if (!e || std::strcmp(e, "v2") == 0) return false;
    if (std::strcmp(e, "v3") == 0) return true;
    throw CudaError(std::string("TWINFER_GEMV=") + e + ": expected v2 or v3");
  }();
  return on;
}
bool use_v3(const bf16* x, int T, int in, const bf16* W) {
  return v3_enabled() && lab::gemv_v3_applicable(x, T, in, W);
}

}  // namespace

void gemv_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  if (use_v3(x, T, in, W)) lab::gemv_v3(x, T, in, W, out, y, s);
  else if (lab::gemv_v2_applicable(x, in, W)) lab::gemv_v2(x, T, in, W, out, y, s);
  else lab::gemv_v1(x, T, in, W, out, y, s);
}

void gemv_f32(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  if (use_v3(x, T, in, W)) lab::gemv_v3(x, T, in, W, out, y, s);
  else if (lab::gemv_v2_applicable(x, in, W)) lab::gemv_v2(x, T, in, W, out, y, s);
  else lab::gemv_v1(x, T, in, W, out, y, s);
}

bool gemv_gate_up_silu_applicable(const bf16* x, int in, const bf16* W_gu) {
  return lab::gemv_v2_applicable(x, in, W_gu);
}

// The fused variants below need v2's alignment (the launchers throw naming what is broken).
void gemv_gate_up_silu_bf16(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                            cudaStream_t s) {
  if (use_v3(x, T, in, W_gu)) lab::gemv_v3_gate_up_silu(x, T, in, W_gu, I, act, s);
  else lab::gemv_v2_gate_up_silu(x, T, in, W_gu, I, act, s);
}

void gemv_norm_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                    int out, bf16* y, cudaStream_t s) {
  if (use_v3(x, T, in, W)) lab::gemv_v3_norm(x, norm_w, eps, T, in, W, out, y, s);
  else lab::gemv_v2_norm(x, norm_w, eps, T, in, W, out, y, s);
}
void gemv_norm_gate_up_silu_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                                 const bf16* W_gu, int I, bf16* act, cudaStream_t s) {
  if (use_v3(x, T, in, W_gu)) lab::gemv_v3_norm_gate_up_silu(x, norm_w, eps, T, in, W_gu, I, act, s);
  else lab::gemv_v2_norm_gate_up_silu(x, norm_w, eps, T, in, W_gu, I, act, s);
}
void gemv_add_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                   cudaStream_t s) {
  if (use_v3(x, T, in, W)) lab::gemv_v3_add(x, T, in, W, out, residual, s);
  else lab::gemv_v2_add(x, T, in, W, out, residual, s);
}

}  // namespace twinfer::cuda
