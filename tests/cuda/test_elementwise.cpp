// Elementwise kernels (kernels/elementwise.cu, kernels/rope_kv.cu) against fp64 CPU references.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "tests/cuda/bf16_host.h"
#include "tests/cuda/gpu_test.h"

using namespace twinfer;
using namespace twinfer::test;
using twinfer::cuda::bf16;

namespace {

// fp64 RMSNorm of one row: x / sqrt(mean(x^2) + eps) * w.
void ref_norm(const float* x, const float* w, int H, double eps, float* out) {
  double ss = 0;
  for (int i = 0; i < H; ++i) ss += double(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / H + eps);
  for (int i = 0; i < H; ++i) out[i] = float(double(x[i]) * inv * w[i]);
}

}  // namespace

TEST_CASE("embed gathers rows", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  for (int H : {4096, 13, 64}) {
    const int vocab = 50, T = 37;
    std::vector<float> tf;
    DevBuf<bf16> table(size_t(vocab) * H), out(size_t(T) * H);
    table.upload(randn_bf16(table.n, 1.f, 1, &tf));
    std::vector<int32_t> ids(T);
    for (int t = 0; t < T; ++t) ids[t] = (t * 17 + 3) % vocab;
    DevBuf<int32_t> dids(T);
    dids.upload(ids);
    out.poison();
    cuda::embed(table.p, dids.p, T, H, out.p, nullptr);
    const auto o = to_f32(out.download());
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < H; ++i) REQUIRE(o[size_t(t) * H + i] == tf[size_t(ids[t]) * H + i]);
  }
}

TEST_CASE("rms_norm and add_rms_norm match fp64", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  struct Shape { int T, H, offset; };  // offset (elements) misaligns x to force the scalar path
  for (const Shape sh : {Shape{1, 4096, 0}, Shape{37, 13, 0}, Shape{5, 8, 0}, Shape{3, 1000, 0},
                         Shape{4, 64, 1}, Shape{2, 8192, 0}}) {
    INFO("T=" << sh.T << " H=" << sh.H << " offset=" << sh.offset);
    const size_t n = size_t(sh.T) * sh.H;
    std::vector<float> xf, df, wf;
    DevBuf<bf16> x(n + 1), d(n + 1), w(sh.H), out(n);
    auto xh = randn_bf16(n, 2.f, 2, &xf, 0.3f);
    auto dh = randn_bf16(n, 1.f, 3, &df);
    w.upload(randn_bf16(sh.H, 0.2f, 4, &wf, 1.f));
    xh.insert(xh.begin(), sh.offset, __float2bfloat16(0.f));
    xh.resize(n + 1);
    dh.insert(dh.begin(), sh.offset, __float2bfloat16(0.f));
    dh.resize(n + 1);
    x.upload(xh);
    d.upload(dh);
    const float eps = 1e-5f;

    out.poison();
    cuda::rms_norm(x.p + sh.offset, w.p, sh.T, sh.H, eps, out.p, nullptr);
    std::vector<float> ref(n);
    for (int t = 0; t < sh.T; ++t) ref_norm(&xf[size_t(t) * sh.H], wf.data(), sh.H, eps, &ref[size_t(t) * sh.H]);
    CHECK(rel_l2(to_f32(out.download()), ref) < 4e-3);  // two bf16 roundings: ~1.5e-3 expected

    out.poison();
    cuda::add_rms_norm(x.p + sh.offset, d.p + sh.offset, w.p, sh.T, sh.H, eps, out.p, nullptr);
    const auto res = to_f32(x.download());
    std::vector<float> sum(n);
    bool exact = true;
    for (size_t i = 0; i < n; ++i) {
      sum[i] = rbf(xf[i] + df[i]);  // HF: residual + delta in bf16
      exact = exact && res[i + sh.offset] == sum[i];
    }
    CHECK(exact);
    for (int t = 0; t < sh.T; ++t) ref_norm(&sum[size_t(t) * sh.H], wf.data(), sh.H, eps, &ref[size_t(t) * sh.H]);
    CHECK(rel_l2(to_f32(out.download()), ref) < 4e-3);
  }
}

TEST_CASE("silu_mul matches fp64", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  for (auto [T, I] : {std::pair{1, 14336}, std::pair{37, 13}, std::pair{9, 1024}}) {
    INFO("T=" << T << " I=" << I);
    std::vector<float> gf;
    DevBuf<bf16> gu(size_t(T) * 2 * I), out(size_t(T) * I);
    gu.upload(randn_bf16(gu.n, 2.f, 5, &gf));
    out.poison();
    cuda::silu_mul(gu.p, T, I, out.p, nullptr);
    std::vector<float> ref(out.n);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < I; ++i) {
        const double g = gf[size_t(t) * 2 * I + i], u = gf[size_t(t) * 2 * I + I + i];
        ref[size_t(t) * I + i] = float(g / (1 + std::exp(-g)) * u);
      }
    CHECK(rel_l2(to_f32(out.download()), ref) < 1e-2);  // two bf16 roundings: ~3e-3 expected
  }
}

TEST_CASE("rope_kv_write rotates q/k and fills the paged cache", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  struct Cfg { int n_heads, n_kv, hd, T; bool bias; cuda::KvDtype dt; };
  for (const Cfg c : {Cfg{4, 2, 64, 37, true, cuda::KvDtype::bf16},
                      Cfg{4, 4, 128, 37, false, cuda::KvDtype::fp8_e4m3},
                      Cfg{6, 2, 6, 1, true, cuda::KvDtype::fp8_e4m3},
                      Cfg{8, 1, 128, 20, false, cuda::KvDtype::bf16},
                      // Small steps (T <= 8: one CTA per head) in both dtypes, with bias.
                      Cfg{32, 8, 128, 5, true, cuda::KvDtype::bf16},
                      Cfg{4, 2, 64, 8, true, cuda::KvDtype::fp8_e4m3}}) {
    INFO("n_heads=" << c.n_heads << " n_kv=" << c.n_kv << " hd=" << c.hd << " T=" << c.T
                    << " bias=" << c.bias << " fp8=" << (c.dt == cuda::KvDtype::fp8_e4m3));
    const int width = (c.n_heads + 2 * c.n_kv) * c.hd, half = c.hd / 2;
    const int num_blocks = 5, block_size = 16, slots = num_blocks * block_size;
    const bool fp8 = c.dt == cuda::KvDtype::fp8_e4m3;
    const size_t esz = fp8 ? 1 : 2, cache_elems = size_t(slots) * c.n_kv * c.hd;
    std::vector<float> qf, bf;
    DevBuf<bf16> qkv(size_t(c.T) * width), bias(width);
    qkv.upload(randn_bf16(qkv.n, 1.f, 6, &qf));
    bias.upload(randn_bf16(width, 0.5f, 7, &bf));
    std::vector<int32_t> pos(c.T);
    std::vector<int64_t> slot(c.T);
    std::vector<int> perm(slots);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(8));
    for (int t = 0; t < c.T; ++t) {
      pos[t] = (t * 977 + 5) % 4096;
      slot[t] = (t % 5 == 3) ? -1 : perm[t];
    }
    std::vector<float> inv_freq(half);
    for (int i = 0; i < half; ++i) inv_freq[i] = float(std::pow(10000.0, -2.0 * i / c.hd));
    DevBuf<int32_t> dpos(c.T);
    DevBuf<int64_t> dslot(c.T);
    DevBuf<float> dfreq(half), scales(2);
    dpos.upload(pos);
    dslot.upload(slot);
    dfreq.upload(inv_freq);
    const float ks = 0.02f, vs = 0.03f;
    scales.upload({ks, vs});
    DevBuf<uint8_t> kc(cache_elems * esz), vc(cache_elems * esz);
    kc.poison();
    vc.poison();
    cuda::PagedKV kv;
    kv.k = kc.p;
    kv.v = vc.p;
    kv.num_blocks = num_blocks;
    kv.block_size = block_size;
    kv.n_kv_heads = c.n_kv;
    kv.head_dim = c.hd;
    kv.dtype = c.dt;
    kv.k_scale = scales.p;
    kv.v_scale = scales.p + 1;
    cuda::rope_kv_write(qkv.p, c.bias ? bias.p : nullptr, c.T, dpos.p, dfreq.p, c.n_heads, c.n_kv,
                        c.hd, dslot.p, kv, nullptr);
    TWINFER_CUDA_CHECK(cudaDeviceSynchronize());

    // fp64 reference of the whole qkv after bias and rotation.
    std::vector<float> ref(qkv.n);
    for (int t = 0; t < c.T; ++t) {
      const float* x = &qf[size_t(t) * width];
      float* r = &ref[size_t(t) * width];
      for (int j = 0; j < width; ++j) r[j] = x[j] + (c.bias ? bf[j] : 0.f);
      for (int h = 0; h < c.n_heads + c.n_kv; ++h)
        for (int i = 0; i < half; ++i) {
          const double a = double(pos[t]) * inv_freq[i];
          const double x1 = r[h * c.hd + i], x2 = r[h * c.hd + i + half];
          r[h * c.hd + i] = float(x1 * std::cos(a) - x2 * std::sin(a));
          r[h * c.hd + i + half] = float(x2 * std::cos(a) + x1 * std::sin(a));
        }
    }
    CHECK(rel_l2(to_f32(qkv.download()), ref) < 1e-2);

    // Cache: written rows decoded against the reference k/v; untouched slots keep the poison.
    const auto kb = kc.download(), vb = vc.download();
    std::vector<bool> written(slots, false);
    std::vector<float> got, want;
    auto decode = [&](const std::vector<uint8_t>& b, size_t e, float scale) {
      if (fp8) return fp8_to_f32(b[e]) * scale;
      __nv_bfloat16_raw r;
      std::memcpy(&r.x, &b[2 * e], 2);
      return __bfloat162float(bf16(r));
    };
    for (int t = 0; t < c.T; ++t) {
      if (slot[t] < 0) continue;
      written[size_t(slot[t])] = true;
      for (int j = 0; j < c.n_kv * c.hd; ++j) {
        const size_t e = size_t(slot[t]) * c.n_kv * c.hd + j;  // (slot, h, d) with j = h*hd + d
        got.push_back(decode(kb, e, ks));
        want.push_back(ref[size_t(t) * width + c.n_heads * c.hd + j]);
        got.push_back(decode(vb, e, vs));
        want.push_back(ref[size_t(t) * width + (c.n_heads + c.n_kv) * c.hd + j]);
      }
    }
    // bf16: ~3e-3; fp8 e4m3 (3 mantissa bits): ~2.5e-2.
    CHECK(rel_l2(got, want) < (fp8 ? 5e-2 : 1e-2));
    bool untouched = true;
    for (int sl = 0; sl < slots; ++sl) {
      if (written[sl]) continue;
      for (size_t b = 0; b < size_t(c.n_kv) * c.hd * esz; ++b) {
        const size_t at = size_t(sl) * c.n_kv * c.hd * esz + b;
        untouched = untouched && kb[at] == 0xFF && vb[at] == 0xFF;
      }
    }
    CHECK(untouched);
  }
}

TEST_CASE("rope_kv_write rejects mismatched cache geometry", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  cuda::PagedKV kv;
  kv.n_kv_heads = 2;
  kv.head_dim = 64;
  kv.num_blocks = 1;
  REQUIRE_THROWS_AS(cuda::rope_kv_write(nullptr, nullptr, 1, nullptr, nullptr, 4, 2, 128, nullptr,
                                        kv, nullptr),
                    cuda::CudaError);
}

TEST_CASE("fill_normal is deterministic N(0, std)", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  const size_t n = 1000001;  // odd: the last pair is half used
  DevBuf<bf16> a(n), b(n), c(n);
  a.poison();
  b.poison();
  c.poison();
  cuda::fill_normal(a.p, n, 0.5f, 42, nullptr);
  cuda::fill_normal(b.p, n, 0.5f, 42, nullptr);
  cuda::fill_normal(c.p, n, 0.5f, 43, nullptr);
  const auto fa = to_f32(a.download()), fb = to_f32(b.download()), fc = to_f32(c.download());
  double s = 0, s2 = 0, s4 = 0;
  size_t same = 0;
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    finite = finite && std::isfinite(fa[i]);
    s += fa[i];
    s2 += double(fa[i]) * fa[i];
    s4 += std::pow(double(fa[i]), 4);
    same += fa[i] == fc[i];
  }
  REQUIRE(finite);
  CHECK(fa == fb);
  CHECK(same < n / 50);  // another seed: unrelated values (bf16 ties aside)
  const double mean = s / n, var = s2 / n - mean * mean;
  CHECK(std::abs(mean) < 0.005);                   // se = 0.5/sqrt(n) = 5e-4
  CHECK(std::abs(std::sqrt(var) - 0.5) < 0.005);   // 1%
  CHECK(std::abs(s4 / n / (var * var) - 3.0) < 0.05);  // normal kurtosis
}

TEST_CASE("f32 <-> bf16 conversions round to nearest even", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  const size_t n = 12345;
  std::vector<float> x(n);
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.f, 100.f);
  for (auto& v : x) v = d(rng);
  DevBuf<float> xf(n), back(n);
  DevBuf<bf16> xb(n);
  xf.upload(x);
  xb.poison();
  back.poison();
  cuda::f32_to_bf16(xf.p, n, xb.p, nullptr);
  cuda::bf16_to_f32(xb.p, n, back.p, nullptr);
  const auto got = back.download();
  bool ok = true;
  for (size_t i = 0; i < n; ++i) ok = ok && got[i] == rbf(x[i]);
  CHECK(ok);
}

// A prefetch is only a hint, so what can be checked is that every legal range launches and
// leaves memory as it was (an out-of-range or misaligned bulk prefetch would fault), and that
// an illegal range is refused by name before launch.
TEST_CASE("l2_prefetch_rows accepts legal ranges and refuses the rest", "[gpu][elementwise]") {
  TWINFER_REQUIRE_GPU();
  const int rows = 4096, pitch = 8192;  // o_proj's shape in bytes
  DevBuf<uint8_t> w(size_t(rows) * pitch);
  std::vector<uint8_t> h(w.n);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint8_t(i * 131 + 7);
  w.upload(h);
  cuda::l2_prefetch_rows(w.p, 1, int64_t(rows) * pitch, 0, int64_t(rows) * pitch, nullptr);
  cuda::l2_prefetch_rows(w.p, rows, pitch, pitch / 2, pitch / 2, nullptr);
  cuda::l2_prefetch_rows(w.p, 3, pitch, 16, 48, nullptr);       // short ranges, odd count
  cuda::l2_prefetch_rows(w.p, 0, pitch, 0, pitch, nullptr);     // nothing to do
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  CHECK(w.download() == h);
  CHECK_THROWS_AS(cuda::l2_prefetch_rows(w.p + 8, 1, pitch, 0, pitch, nullptr), cuda::CudaError);
  CHECK_THROWS_AS(cuda::l2_prefetch_rows(w.p, 1, pitch, 16, pitch, nullptr), cuda::CudaError);
  CHECK_THROWS_AS(cuda::l2_prefetch_rows(w.p, 1, pitch, 0, 24, nullptr), cuda::CudaError);
}
