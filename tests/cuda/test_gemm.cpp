// GEMM / GEMV (kernels/gemm.cu, kernels/gemv.cu, kernels/lab/gemv_*.cu) against an fp64 CPU
// reference on the same bf16 operands.
#include <cmath>
#include <cstring>

#include "kernels/lab/gemv_lab.h"
#include "tests/cuda/bf16_host.h"
#include "tests/cuda/gpu_test.h"

using namespace twinfer;
using namespace twinfer::test;
using twinfer::cuda::bf16;

namespace {

struct Problem {
  int T, in, out;
  std::vector<float> xf, wf, ref;  // x [T, in], W [out, in], ref [T, out]
  DevBuf<bf16> x, W;
  Problem(int T_, int in_, int out_, uint32_t seed)
      : T(T_), in(in_), out(out_), x(size_t(T_) * in_), W(size_t(out_) * in_) {
    x.upload(randn_bf16(x.n, 1.f, seed, &xf));
    W.upload(randn_bf16(W.n, 0.05f, seed + 1, &wf));
    ref.resize(size_t(T) * out);
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < out; ++o) {
        double acc = 0;
        for (int k = 0; k < in; ++k) acc += double(xf[size_t(t) * in + k]) * wf[size_t(o) * in + k];
        ref[size_t(t) * out + o] = float(acc);
      }
  }
};

// bf16 output: one rounding, rel_l2 ~ 2e-3 expected; 1e-2 allowed.
constexpr double kTolBf16 = 1e-2;
// fp32 output: only the fp32 accumulation order differs from fp64, ~1e-6 expected.
constexpr double kTolF32 = 1e-4;

}  // namespace

TEST_CASE("gemv lab versions match fp64", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  struct S { int T, in, out; };
  for (const S s : {S{1, 4096, 512}, S{3, 200, 97}, S{8, 1024, 4500}, S{9, 4096, 9000},
                    S{5, 13, 50}, S{1, 14336, 64}, S{2, 8, 1}}) {
    INFO("T=" << s.T << " in=" << s.in << " out=" << s.out);
    Problem p(s.T, s.in, s.out, 10);
    DevBuf<bf16> y(size_t(s.T) * s.out);
    DevBuf<float> yf(size_t(s.T) * s.out);
    y.poison();
    cuda::lab::gemv_v1(p.x.p, s.T, s.in, p.W.p, s.out, y.p, nullptr);
    CHECK(rel_l2(to_f32(y.download()), p.ref) < kTolBf16);
    yf.poison();
    cuda::lab::gemv_v1(p.x.p, s.T, s.in, p.W.p, s.out, yf.p, nullptr);
    CHECK(rel_l2(yf.download(), p.ref) < kTolF32);
    if (cuda::lab::gemv_v2_applicable(p.x.p, s.in, p.W.p)) {
      y.poison();
      cuda::lab::gemv_v2(p.x.p, s.T, s.in, p.W.p, s.out, y.p, nullptr);
      CHECK(rel_l2(to_f32(y.download()), p.ref) < kTolBf16);
      yf.poison();
      cuda::lab::gemv_v2(p.x.p, s.T, s.in, p.W.p, s.out, yf.p, nullptr);
      CHECK(rel_l2(yf.download(), p.ref) < kTolF32);
    } else {
      CHECK(s.in % 8 != 0);  // every aligned test shape with in % 8 == 0 must take v2
    }
    y.poison();
    cuda::gemv_bf16(p.x.p, s.T, s.in, p.W.p, s.out, y.p, nullptr);
    CHECK(rel_l2(to_f32(y.download()), p.ref) < kTolBf16);
  }
}

// v3 streams W through shared memory but keeps v2's per-row summation order: the same bits, in
// every fused variant, for shapes with partial chunks (in not a multiple of 2048) and partial
// row groups (out not a multiple of 4).
TEST_CASE("gemv v3 gives v2's bits", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  if (!cuda::lab::gemv_v3_supported()) {
    std::printf("SKIPPED: gemv v3 needs an sm_90 device and build (TMA bulk copies)\n");
    return;
  }
  struct S { int T, in, out; };
  for (const S s : {S{1, 4096, 6144}, S{2, 4096, 4096}, S{1, 14336, 4096}, S{2, 200, 97},
                    S{1, 8, 1}, S{2, 2304, 4501}, S{1, 4096, 128256}}) {
    INFO("T=" << s.T << " in=" << s.in << " out=" << s.out);
    Problem p(s.T, s.in, s.out, 40 + s.T);
    auto same = [](const auto& a, const auto& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
    };
    DevBuf<bf16> y2(size_t(s.T) * s.out), y3(size_t(s.T) * s.out);
    DevBuf<float> f2(size_t(s.T) * s.out), f3(size_t(s.T) * s.out);
    y2.poison(); y3.poison(); f2.poison(); f3.poison();
    cuda::lab::gemv_v2(p.x.p, s.T, s.in, p.W.p, s.out, y2.p, nullptr);
    cuda::lab::gemv_v3(p.x.p, s.T, s.in, p.W.p, s.out, y3.p, nullptr);
    cuda::lab::gemv_v2(p.x.p, s.T, s.in, p.W.p, s.out, f2.p, nullptr);
    cuda::lab::gemv_v3(p.x.p, s.T, s.in, p.W.p, s.out, f3.p, nullptr);
    CHECK(same(y2.download(), y3.download()));
    CHECK(same(f2.download(), f3.download()));
    CHECK(rel_l2(f3.download(), p.ref) < kTolF32);
    std::vector<float> nwf;
    DevBuf<bf16> nw(size_t(s.in));
    nw.upload(randn_bf16(nw.n, 0.3f, 60 + s.T, &nwf));
    y2.poison(); y3.poison();
    cuda::lab::gemv_v2_norm(p.x.p, nw.p, 1e-5f, s.T, s.in, p.W.p, s.out, y2.p, nullptr);
    cuda::lab::gemv_v3_norm(p.x.p, nw.p, 1e-5f, s.T, s.in, p.W.p, s.out, y3.p, nullptr);
    CHECK(same(y2.download(), y3.download()));
    const auto res0 = randn_bf16(size_t(s.T) * s.out, 1.f, 70 + s.T, nullptr);
    DevBuf<bf16> r2(res0.size()), r3(res0.size());
    r2.upload(res0);
    r3.upload(res0);
    cuda::lab::gemv_v2_add(p.x.p, s.T, s.in, p.W.p, s.out, r2.p, nullptr);
    cuda::lab::gemv_v3_add(p.x.p, s.T, s.in, p.W.p, s.out, r3.p, nullptr);
    CHECK(same(r2.download(), r3.download()));
    if (s.out % 2 == 0) {
      const int I = s.out / 2;
      DevBuf<bf16> a2(size_t(s.T) * I), a3(size_t(s.T) * I);
      a2.poison(); a3.poison();
      cuda::lab::gemv_v2_gate_up_silu(p.x.p, s.T, s.in, p.W.p, I, a2.p, nullptr);
      cuda::lab::gemv_v3_gate_up_silu(p.x.p, s.T, s.in, p.W.p, I, a3.p, nullptr);
      CHECK(same(a2.download(), a3.download()));
      a2.poison(); a3.poison();
      cuda::lab::gemv_v2_norm_gate_up_silu(p.x.p, nw.p, 1e-5f, s.T, s.in, p.W.p, I, a2.p, nullptr);
      cuda::lab::gemv_v3_norm_gate_up_silu(p.x.p, nw.p, 1e-5f, s.T, s.in, p.W.p, I, a3.p, nullptr);
      CHECK(same(a2.download(), a3.download()));
    }
  }
  // What v3 cannot take is refused by name: T past its limit, unaligned operands.
  Problem p(3, 64, 8, 98);
  DevBuf<bf16> y(size_t(3) * 8);
  CHECK_THROWS_AS(cuda::lab::gemv_v3(p.x.p, 3, 64, p.W.p, 8, y.p, nullptr), cuda::CudaError);
  CHECK_THROWS_AS(cuda::lab::gemv_v3(p.x.p + 1, 1, 56, p.W.p, 8, y.p, nullptr), cuda::CudaError);
}

TEST_CASE("gemv falls back to v1 for unaligned operands", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  Problem p(4, 64, 33, 20);
  // x shifted by one element: still in % 8 == 0, but no longer 16-byte aligned.
  DevBuf<bf16> xs(p.x.n + 1), y(size_t(4) * 33);
  auto xh = p.x.download();
  xh.insert(xh.begin(), __float2bfloat16(0.f));
  xs.upload(xh);
  REQUIRE_FALSE(cuda::lab::gemv_v2_applicable(xs.p + 1, 64, p.W.p));
  y.poison();
  cuda::gemv_bf16(xs.p + 1, 4, 64, p.W.p, 33, y.p, nullptr);
  CHECK(rel_l2(to_f32(y.download()), p.ref) < kTolBf16);
}

TEST_CASE("Gemm::run and run_f32 on both paths", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  cuda::Gemm gemm;
  for (auto [in, out] : {std::pair{512, 384}, std::pair{200, 97}, std::pair{13, 50}}) {
    for (int T : {1, 3, 8, 9, 64, 300}) {
      Problem p(T, in, out, 30 + T);
      DevBuf<bf16> y(size_t(T) * out);
      DevBuf<float> yf(size_t(T) * out);
      for (int max_rows : {8, 0, 512}) {  // default split, cuBLAS only, GEMV only
        INFO("T=" << T << " in=" << in << " out=" << out << " gemv_max_rows=" << max_rows);
        gemm.gemv_max_rows = max_rows;
        y.poison();
        gemm.run(p.x.p, T, in, p.W.p, out, y.p);
        CHECK(rel_l2(to_f32(y.download()), p.ref) < kTolBf16);
        yf.poison();
        gemm.run_f32(p.x.p, T, in, p.W.p, out, yf.p);
        CHECK(rel_l2(yf.download(), p.ref) < kTolF32);
      }
    }
  }
}

TEST_CASE("Gemm is capturable in a CUDA graph on its stream", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  cudaStream_t s = nullptr;
  TWINFER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  {
    cuda::Gemm gemm;
    gemm.set_stream(s);
    Problem small(4, 1024, 640, 50), large(96, 1024, 640, 51);
    DevBuf<bf16> ys(size_t(4) * 640), yl(size_t(96) * 640);
    ys.poison();
    yl.poison();
    // The uploads and poisons ran on the legacy stream, which a non-blocking stream ignores.
    TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    TWINFER_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    gemm.run(small.x.p, 4, 1024, small.W.p, 640, ys.p);
    gemm.run(large.x.p, 96, 1024, large.W.p, 640, yl.p);
    TWINFER_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    TWINFER_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    TWINFER_CUDA_CHECK(cudaGraphLaunch(ge, s));
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(s));
    CHECK(rel_l2(to_f32(ys.download()), small.ref) < kTolBf16);
    CHECK(rel_l2(to_f32(yl.download()), large.ref) < kTolBf16);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
  }
  cudaStreamDestroy(s);
}

TEST_CASE("Gemm rejects bad shapes", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  cuda::Gemm gemm;
  REQUIRE_THROWS_AS(gemm.run(nullptr, 1, 0, nullptr, 4, nullptr), cuda::CudaError);
  REQUIRE_THROWS_AS(gemm.run_f32(nullptr, -1, 4, nullptr, 4, nullptr), cuda::CudaError);
}

// The fused gate/up + SiLU GEMV must give exactly the bits of gemv_bf16 into [T, 2I] followed
// by silu_mul; the fp64 reference (rounded the same way) only bounds gross errors.
TEST_CASE("gate/up GEMV with SiLU epilogue matches gemv + silu_mul bit for bit", "[gpu][gemm]") {
  TWINFER_REQUIRE_GPU();
  struct S { int T, in, I; };
  for (const S s : {S{1, 4096, 1536}, S{3, 200, 97}, S{8, 1024, 4500}, S{9, 256, 300},
                    S{5, 64, 1}, S{2, 512, 5000}, S{4, 8, 33}}) {
    INFO("T=" << s.T << " in=" << s.in << " I=" << s.I);
    Problem p(s.T, s.in, 2 * s.I, 60 + s.T);  // W_gu [2I, in]: gate rows then up rows
    REQUIRE(cuda::gemv_gate_up_silu_applicable(p.x.p, s.in, p.W.p));
    DevBuf<bf16> gu(size_t(s.T) * 2 * s.I), act_ref(size_t(s.T) * s.I), act(size_t(s.T) * s.I);
    gu.poison();
    act_ref.poison();
    act.poison();
    cuda::gemv_bf16(p.x.p, s.T, s.in, p.W.p, 2 * s.I, gu.p, nullptr);
    cuda::silu_mul(gu.p, s.T, s.I, act_ref.p, nullptr);
    cuda::gemv_gate_up_silu_bf16(p.x.p, s.T, s.in, p.W.p, s.I, act.p, nullptr);
    const auto a = act.download(), r = act_ref.download();
    size_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i)
      diff += std::memcmp(&a[i], &r[i], sizeof(bf16)) != 0;
    CHECK(diff == 0);
    // fp64 sums rounded like the kernels: bf16 gate and up, bf16 silu, bf16 product.
    std::vector<float> ref(a.size());
    for (int t = 0; t < s.T; ++t)
      for (int j = 0; j < s.I; ++j) {
        const float g = rbf(p.ref[size_t(t) * 2 * s.I + j]);
        const float u = rbf(p.ref[size_t(t) * 2 * s.I + s.I + j]);
        ref[size_t(t) * s.I + j] = rbf(rbf(float(g / (1.0 + std::exp(-double(g))))) * u);
      }
    CHECK(rel_l2(to_f32(a), ref) < kTolBf16);  // ~3e-3 expected (bf16 roundings of the sums)
  }
  // in % 8 != 0 has no fused path: the launcher says so instead of reading misaligned vectors.
  Problem bad(2, 12, 8, 70);
  DevBuf<bf16> out(2 * 4);
  CHECK_FALSE(cuda::gemv_gate_up_silu_applicable(bad.x.p, 12, bad.W.p));
  CHECK_THROWS_AS(cuda::gemv_gate_up_silu_bf16(bad.x.p, 2, 12, bad.W.p, 4, out.p, nullptr),
                  cuda::CudaError);
}

// The decode fast path's fused GEMVs against the unfused kernels they replace:
// - residual add epilogue: bit-identical to gemv_bf16 then add_rms_norm's add;
// - RMSNorm prologue: the block computes 1/rms with another summation order than rms_norm, so
//   a few outputs may differ in the last bf16 bit; at most 2% of outputs differ and the
//   result stays at bf16 rounding distance from rms_norm + gemv.
TEST_CASE("fused norm / residual GEMVs match the unfused kernels", "[gpu][gemm][fused]") {
  TWINFER_REQUIRE_GPU();
  struct S { int T, in, out; };
  {
    for (const S s : {S{1, 4096, 6144}, S{3, 200, 97}, S{8, 1024, 4500}, S{9, 256, 300},
                      S{5, 64, 1}, S{2, 512, 5000}, S{1, 14336, 64}}) {
      INFO("T=" << s.T << " in=" << s.in << " out=" << s.out);
      Problem p(s.T, s.in, s.out, 80 + s.T);
      std::vector<float> nwf;
      DevBuf<bf16> nw(size_t(s.in));
      nw.upload(randn_bf16(nw.n, 0.3f, 90 + s.T, &nwf));
      const float eps = 1e-5f;
      // Norm prologue: rms_norm then gemv vs the fused kernel.
      DevBuf<bf16> h(size_t(s.T) * s.in), y_ref(size_t(s.T) * s.out), y(size_t(s.T) * s.out);
      h.poison();
      y_ref.poison();
      y.poison();
      cuda::rms_norm(p.x.p, nw.p, s.T, s.in, eps, h.p, nullptr);
      cuda::gemv_bf16(h.p, s.T, s.in, p.W.p, s.out, y_ref.p, nullptr);
      cuda::gemv_norm_bf16(p.x.p, nw.p, eps, s.T, s.in, p.W.p, s.out, y.p, nullptr);
      const auto a = y.download(), r = y_ref.download();
      size_t diff = 0;
      for (size_t i = 0; i < a.size(); ++i) diff += std::memcmp(&a[i], &r[i], sizeof(bf16)) != 0;
      CHECK(diff <= a.size() / 50);
      CHECK(rel_l2(to_f32(a), to_f32(r)) < 5e-3);
      // Residual epilogue: residual' = bf16(residual + bf16(x W^T)), exactly.
      std::vector<float> resf;
      const auto res0 = randn_bf16(size_t(s.T) * s.out, 1.f, 95 + s.T, &resf);
      DevBuf<bf16> res(res0.size()), o(res0.size());
      res.upload(res0);
      o.poison();
      cuda::gemv_bf16(p.x.p, s.T, s.in, p.W.p, s.out, o.p, nullptr);
      cuda::gemv_add_bf16(p.x.p, s.T, s.in, p.W.p, s.out, res.p, nullptr);
      const auto got = to_f32(res.download()), ov = to_f32(o.download());
      size_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i) bad += got[i] != rbf(resf[i] + ov[i]);
      CHECK(bad == 0);
      // Norm + gate/up + SiLU: against rms_norm then the unfused-norm gate/up kernel.
      if (s.out % 2 == 0) {
        const int I = s.out / 2;
        DevBuf<bf16> act_ref(size_t(s.T) * I), act(size_t(s.T) * I);
        act_ref.poison();
        act.poison();
        cuda::gemv_gate_up_silu_bf16(h.p, s.T, s.in, p.W.p, I, act_ref.p, nullptr);
        cuda::gemv_norm_gate_up_silu_bf16(p.x.p, nw.p, eps, s.T, s.in, p.W.p, I, act.p, nullptr);
        const auto aa = act.download(), ar = act_ref.download();
        size_t d2 = 0;
        for (size_t i = 0; i < aa.size(); ++i) d2 += std::memcmp(&aa[i], &ar[i], sizeof(bf16)) != 0;
        CHECK(d2 <= aa.size() / 50);
        CHECK(rel_l2(to_f32(aa), to_f32(ar)) < 5e-3);
      }
    }
  }
  // A misaligned norm weight is refused by name.
  Problem p(1, 64, 8, 99);
  DevBuf<bf16> nw(72), y(8);
  CHECK_THROWS_AS(cuda::gemv_norm_bf16(p.x.p, nw.p + 1, 1e-5f, 1, 64, p.W.p, 8, y.p, nullptr),
                  cuda::CudaError);
}
