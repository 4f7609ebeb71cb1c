// Gemm: y[T, out] = x[T, in] W^T, bf16 operands, fp32 accumulation. T <= gemv_max_rows takes the
// hand-written GEMV (kernels/gemv.cu); larger T goes to cuBLAS.
//
// cuBLAS is column-major. Row-major W [out, in] is column-major W^T [in, out] with ld = in, and
// row-major x [T, in] is column-major x^T [in, T]; row-major y [T, out] is column-major
// y^T [out, T] with ld = out. So y^T = W * x^T: opA = T on the [in, out] view of W (lda = in),
// opB = N on x^T (ldb = in), m = out, n = T, k = in, ldc = out.
#include <cublas_v2.h>

#include <string>

#include "kernels/lab/gemv_lab.h"
#include "kernels/ops.h"

namespace twinfer::cuda {
namespace {

void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string(what) + ": " + cublasGetStatusName(st) + " (" +
                    cublasGetStatusString(st) + ")");
}

void check_shape(const char* fn, int T, int in, int out) {
  if (T < 0 || in <= 0 || out <= 0)
    throw CudaError(std::string(fn) + ": need T >= 0, in > 0, out > 0, got T=" + std::to_string(T) +
                    " in=" + std::to_string(in) + " out=" + std::to_string(out));
}

void cublas_gemm(cublasHandle_t h, const bf16* x, int T, int in, const bf16* W, int out, void* y,
                 cudaDataType_t ytype) {
  const float alpha = 1.f, beta = 0.f;  // host pointer mode (the handle's default)
  check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, T, in, &alpha, W, CUDA_R_16BF, in, x,
                            CUDA_R_16BF, in, &beta, y, ytype, out, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace

Gemm::Gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  try {
    if (workspace_bytes_ > 0) TWINFER_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
    // A fixed user workspace: cuBLAS then never allocates, which graph capture requires.
    // (Set after the stream: cublasSetStream resets the workspace to cuBLAS's own pool.)
    check_cublas(cublasSetStream(h, stream_), "cublasSetStream");
    check_cublas(cublasSetWorkspace(h, workspace_, workspace_bytes_), "cublasSetWorkspace");
  } catch (...) {
    if (workspace_) cudaFree(workspace_);
    cublasDestroy(h);
    throw;
  }
}

Gemm::~Gemm() {
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
  if (workspace_) cudaFree(workspace_);
}

void Gemm::set_stream(cudaStream_t s) {
  stream_ = s;
  check_cublas(cublasSetStream(static_cast<cublasHandle_t>(handle_), s), "cublasSetStream");
  // cublasSetStream resets the workspace to the default pool; restore ours.
  check_cublas(cublasSetWorkspace(static_cast<cublasHandle_t>(handle_), workspace_, workspace_bytes_),
               "cublasSetWorkspace");
}

void Gemm::run(const bf16* x, int T, int in, const bf16* W, int out, bf16* y) {
  check_shape("Gemm::run", T, in, out);
  if (T == 0) return;
  if (T <= gemv_max_rows) {
    gemv_bf16(x, T, in, W, out, y, stream_);
    return;
  }
  cublas_gemm(static_cast<cublasHandle_t>(handle_), x, T, in, W, out, y, CUDA_R_16BF);
}

// Small T: the GEMV's fp32-output instantiation (same kernel, no final rounding), so lm_head
// logits at decode read W once at bandwidth; larger T: cuBLAS with an fp32 C.
void Gemm::run_f32(const bf16* x, int T, int in, const bf16* W, int out, float* y) {
  check_shape("Gemm::run_f32", T, in, out);
  if (T == 0) return;
  if (T <= gemv_max_rows) {
    gemv_f32(x, T, in, W, out, y, stream_);
    return;
  }
  cublas_gemm(static_cast<cublasHandle_t>(handle_), x, T, in, W, out, y, CUDA_R_32F);
}

}  // namespace twinfer::cuda
