// GEMM / GEMV benchmarks: cuBLAS vs the hand-written GEMVs (lab v3 and v2, and v1 for reference) at the
// decode sizes of Llama-3-8B, and cuBLAS at prefill sizes. Small T reports "GB/s" (W bytes + x +
// y over time: the roofline there is HBM, ~3.0 TB/s measured on the H100); every row also
// reports "TFLOP/s" (2 T in out). Compare rows with the same shape and T to set gemv_max_rows.
#include <string>

#include "bench/cuda/bench_util.h"
#include "kernels/lab/gemv_lab.h"

using namespace twinfer;
using namespace twinfer::bench;
using twinfer::cuda::bf16;

namespace {

struct Shape { const char* name; int out, in; };
// [out, in] of the weights: attention o_proj, fused qkv, MLP down, fused gate_up, lm_head; then
// the 8192^3 square case.
constexpr Shape kShapes[] = {{"o_proj", 4096, 4096},   {"qkv", 6144, 4096},
                             {"down", 4096, 14336},    {"gate_up", 28672, 4096},
                             {"lm_head", 128256, 4096}, {"square", 8192, 8192}};

enum Impl { kCublas = 0, kGemvV2 = 1, kGemvV1 = 2, kCublasLt = 3, kGemvV3 = 4 };
constexpr const char* kImplName[] = {"cublas", "gemv_v2", "gemv_v1", "cublaslt", "gemv_v3"};

// Args: shape index, T, impl.
void BM_Gemm(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const Shape sh = kShapes[state.range(0)];
  const int T = int(state.range(1));
  const Impl impl = Impl(state.range(2));
  const size_t wn = size_t(sh.out) * sh.in;
  const int copies = rotation_copies(wn * sizeof(bf16));
  DeviceArray<bf16> W(wn * copies), x(size_t(T) * sh.in), y(size_t(T) * sh.out);
  cuda::fill_normal(W.p, wn * copies, 0.02f, 1, nullptr);
  cuda::fill_normal(x.p, size_t(T) * sh.in, 1.f, 2, nullptr);
  cuda::Gemm gemm;
  gemm.gemv_max_rows = impl == kCublas || impl == kCublasLt ? 0 : 1 << 30;
  gemm.use_lt = impl == kCublasLt;
  const int reps = copies < 4 ? 4 : copies;
  time_launches(state, reps, [&](int i) {
    const bf16* w = W.p + (i % copies) * wn;
    if (impl == kGemvV1) cuda::lab::gemv_v1(x.p, T, sh.in, w, sh.out, y.p, nullptr);
    else if (impl == kGemvV2) cuda::lab::gemv_v2(x.p, T, sh.in, w, sh.out, y.p, nullptr);
    else if (impl == kGemvV3) cuda::lab::gemv_v3(x.p, T, sh.in, w, sh.out, y.p, nullptr);
    else gemm.run(x.p, T, sh.in, w, sh.out, y.p);
  });
  const double bytes = 2.0 * (double(wn) + double(T) * sh.in + double(T) * sh.out);
  const double flops = 2.0 * T * double(sh.in) * sh.out;
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kImplName[impl]) + " " + sh.name + " " + std::to_string(sh.out) + "x" +
                 std::to_string(sh.in) + " T=" + std::to_string(T));
}

void small_t_args(benchmark::internal::Benchmark* b) {
  for (int s = 0; s < 5; ++s)
    for (int T : {1, 2, 3, 4, 6, 8, 16}) {
      b->Args({s, T, kCublas});
      b->Args({s, T, kGemvV2});
      if (T <= cuda::lab::kGemvV3MaxT) b->Args({s, T, kGemvV3});
      if (T == 1 || T == 8) b->Args({s, T, kGemvV1});
    }
}
// Prefill and mixed-step sizes (offline serving runs steps of ~2,000 tokens, chunked prefill up to
// the 8,192-token budget), cublasGemmEx against cuBLASLt with the heuristic's first algorithm.
void large_t_args(benchmark::internal::Benchmark* b) {
  for (int impl : {kCublas, kCublasLt}) {
    for (int s = 0; s < 4; ++s)
      for (int T : {512, 2048, 4096, 8192}) b->Args({s, T, impl});
    b->Args({4, 4096, impl});
    b->Args({5, 8192, impl});
  }
}

}  // namespace

BENCHMARK(BM_Gemm)->Name("gemm_small_t")->Apply(small_t_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gemm)->Name("gemm_large_t")->Apply(large_t_args)->UseManualTime()->Unit(benchmark::kMicrosecond);
