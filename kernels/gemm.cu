// Gemm: y[T, out] = x[T, in] W^T, bf16 operands, fp32 accumulation. T <= gemv_max_rows takes the
// hand-written GEMV (kernels/gemv.cu); larger T goes to cuBLAS.
//
// cuBLAS is column-major. Row-major W [out, in] is column-major W^T [in, out] with ld = in, and
// row-major x [T, in] is column-major x^T [in, T]; row-major y [T, out] is column-major
// y^T [out, T] with ld = out. So y^T = W * x^T: opA = T on the [in, out] view of W (lda = in),
// opB = N on x^T (ldb = in), m = out, n = T, k = in, ldc = out.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>

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

// cuBLASLt plans, one per (T, in, out, output type): the heuristic's first algorithm for the
// shape and the fixed workspace, found once on the host (so replays and graph captures do no
// heuristic work) and reused. Layouts are the column-major views described at the top.
struct Gemm::LtPlans {
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cublasLtHandle_t lt = nullptr;
  std::map<std::tuple<int, int, int, int>, Plan> plans;

  LtPlans() { check_cublas(cublasLtCreate(&lt), "cublasLtCreate"); }
  ~LtPlans() {
    for (auto& [k, p] : plans) destroy(p);
    if (lt) cublasLtDestroy(lt);
  }
  static void destroy(Plan& p) {
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  }

  const Plan& get(int T, int in, int out, cudaDataType_t ytype, size_t ws_bytes) {
    const auto key = std::make_tuple(T, in, out, int(ytype));
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan p;
    try {
      check_cublas(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
      const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
      check_cublas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA), "TRANSA");
      check_cublas(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB), "TRANSB");
      check_cublas(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, in, out, in), "layout W");
      check_cublas(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, in, T, in), "layout x");
      check_cublas(cublasLtMatrixLayoutCreate(&p.c, ytype, out, T, out), "layout y");
      cublasLtMatmulPreference_t pref = nullptr;
      check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                           sizeof ws_bytes);
      cublasLtMatmulHeuristicResult_t res{};
      int n = 0;
      const cublasStatus_t st =
          cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &n);
      cublasLtMatmulPreferenceDestroy(pref);
      check_cublas(st, "cublasLtMatmulAlgoGetHeuristic");
      if (n < 1)
        throw CudaError("cublasLt: no algorithm for T=" + std::to_string(T) + " in=" + std::to_string(in) +
                        " out=" + std::to_string(out));
      p.algo = res.algo;
    } catch (...) {
      destroy(p);
      throw;
    }
    return plans.emplace(key, p).first->second;
  }
};

void Gemm::run_cublas(const bf16* x, int T, int in, const bf16* W, int out, void* y, int ytype) {
  if (!use_lt) {
    cublas_gemm(static_cast<cublasHandle_t>(handle_), x, T, in, W, out, y, cudaDataType_t(ytype));
    return;
  }
  if (!lt_) lt_ = std::make_unique<LtPlans>();
  const LtPlans::Plan& p = lt_->get(T, in, out, cudaDataType_t(ytype), workspace_bytes_);
  const float alpha = 1.f, beta = 0.f;
  check_cublas(cublasLtMatmul(lt_->lt, p.op, &alpha, W, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                              workspace_, workspace_bytes_, stream_),
               "cublasLtMatmul");
}

Gemm::Gemm(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  // Measurement switch (docs/gpu.md): TWINFER_GEMM=lt | ex picks the large-T library path.
  if (const char* e = std::getenv("TWINFER_GEMM")) {
    if (!std::strcmp(e, "lt")) use_lt = true;
    else if (!std::strcmp(e, "ex")) use_lt = false;
    else throw CudaError(std::string("TWINFER_GEMM=") + e + ": expected lt or ex");
  }
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
  run_cublas(x, T, in, W, out, y, CUDA_R_16BF);
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
  run_cublas(x, T, in, W, out, y, CUDA_R_32F);
}

}  // namespace twinfer::cuda
