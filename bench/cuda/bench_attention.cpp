// Paged attention kernels, v1 (kernel lab) against the fast launchers of ops.h, Llama-3-8B
// heads (32 q, 8 kv, head_dim 128), block_size 16, shuffled physical blocks.
// Decode: "GB/s" counts the K and V bytes of every context token read once (the roofline is
// H100 copy bandwidth, ~3.0 TB/s); caches smaller than 4x L2 are replicated and rotated so
// each timed call reads cold data. Prefill: "TFLOP/s" counts causal FLOPs,
// 4 * q_len * (ctx / 2) * head_dim * n_heads (QK^T and PV over the lower triangle).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/lab/attention_lab.h"
#include "kernels/ops.h"

namespace {

using namespace twinfer::cuda;

constexpr int kHeads = 32, kKvHeads = 8, kDim = 128, kBlock = 16;

template <class T>
struct Buf {
  T* p = nullptr;
  explicit Buf(size_t n) {
    TWINFER_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    TWINFER_CUDA_CHECK(cudaMemset(p, 0, std::max<size_t>(n, 1) * sizeof(T)));  // workspaces start at 0
  }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

// A cache holding `copies` independent sets of B sequences of ctx tokens; copy i uses table i.
struct Setup {
  int B, ctx, copies, mbps;
  KvDtype dt;
  size_t kv_bytes_per_copy;  // K + V bytes of the B * ctx tokens
  std::unique_ptr<Buf<uint8_t>> k, v;
  std::unique_ptr<Buf<int32_t>> tables, lens;
  std::unique_ptr<Buf<float>> scales;
  PagedKV kv(int) const {
    PagedKV p;
    p.k = k->p;
    p.v = v->p;
    p.block_size = kBlock;
    p.n_kv_heads = kKvHeads;
    p.head_dim = kDim;
    p.num_blocks = copies * B * mbps;
    p.dtype = dt;
    p.k_scale = scales->p;
    p.v_scale = scales->p + 1;
    return p;
  }
  const int32_t* table(int copy) const { return tables->p + size_t(copy) * B * mbps; }
};

Setup make_setup(int B, int ctx, KvDtype dt) {
  Setup s;
  s.B = B;
  s.ctx = ctx;
  s.dt = dt;
  s.mbps = (ctx + kBlock - 1) / kBlock;
  const size_t esize = dt == KvDtype::bf16 ? 2 : 1;
  const size_t block_bytes = size_t(kBlock) * kKvHeads * kDim * esize;
  s.kv_bytes_per_copy = 2 * size_t(B) * ctx * kKvHeads * kDim * esize;
  const size_t l2_x4 = 200u << 20;
  s.copies = int(std::max<size_t>(1, (l2_x4 + s.kv_bytes_per_copy - 1) / s.kv_bytes_per_copy));
  const size_t blocks = size_t(s.copies) * B * s.mbps;
  s.k = std::make_unique<Buf<uint8_t>>(blocks * block_bytes);
  s.v = std::make_unique<Buf<uint8_t>>(blocks * block_bytes);
  // 0x3C: bf16 0x3C3C ~ 0.0115, fp8 e4m3 0x3C = 1.5; finite values, the timing does not care.
  TWINFER_CUDA_CHECK(cudaMemset(s.k->p, 0x3C, blocks * block_bytes));
  TWINFER_CUDA_CHECK(cudaMemset(s.v->p, 0x3C, blocks * block_bytes));
  std::vector<int32_t> perm(blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(42));
  s.tables = std::make_unique<Buf<int32_t>>(blocks);
  TWINFER_CUDA_CHECK(cudaMemcpy(s.tables->p, perm.data(), blocks * 4, cudaMemcpyHostToDevice));
  const std::vector<int32_t> lens(B, ctx);
  s.lens = std::make_unique<Buf<int32_t>>(B);
  TWINFER_CUDA_CHECK(cudaMemcpy(s.lens->p, lens.data(), B * 4, cudaMemcpyHostToDevice));
  const float sc[2] = {1.f / 64, 1.f / 64};
  s.scales = std::make_unique<Buf<float>>(2);
  TWINFER_CUDA_CHECK(cudaMemcpy(s.scales->p, sc, sizeof sc, cudaMemcpyHostToDevice));
  return s;
}

// Times fn(iteration) with CUDA events per iteration; returns the mean seconds.
template <class F>
double time_loop(benchmark::State& state, F&& fn) {
  cudaEvent_t a, b;
  TWINFER_CUDA_CHECK(cudaEventCreate(&a));
  TWINFER_CUDA_CHECK(cudaEventCreate(&b));
  fn(0);  // warm-up (and first-launch costs)
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  double total = 0;
  int64_t n = 0;
  for (auto _ : state) {
    TWINFER_CUDA_CHECK(cudaEventRecord(a));
    fn(int(n));
    TWINFER_CUDA_CHECK(cudaEventRecord(b));
    TWINFER_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    TWINFER_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(ms * 1e-3);
    total += ms * 1e-3;
    ++n;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return n > 0 ? total / n : 0;
}

void bench_decode(benchmark::State& state, int B, int ctx, KvDtype dt, bool fast) {
  std::string why;
  if (!device_available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  const Setup s = make_setup(B, ctx, dt);
  const int q_stride = (kHeads + 2 * kKvHeads) * kDim;
  Buf<bf16> q(size_t(B) * q_stride), out(size_t(B) * kHeads * kDim);
  TWINFER_CUDA_CHECK(cudaMemset(q.p, 0x3C, size_t(B) * q_stride * sizeof(bf16)));
  Buf<uint8_t> ws(decode_attention_workspace_bytes(B, kHeads, kDim, ctx));
  const float scale = 1.f / std::sqrt(float(kDim));
  const double sec = time_loop(state, [&](int it) {
    const int copy = it % s.copies;
    if (fast)
      paged_decode_attention(q.p, q_stride, B, s.lens->p, s.table(copy), s.mbps, s.kv(copy),
                             kHeads, scale, ctx, ws.p, out.p, nullptr);
    else
      lab::paged_decode_attention_v1(q.p, q_stride, B, s.lens->p, s.table(copy), s.mbps,
                                     s.kv(copy), kHeads, scale, ctx, out.p, nullptr);
  });
  state.counters["GB/s"] = sec > 0 ? double(s.kv_bytes_per_copy) / sec / 1e9 : 0;
  state.counters["us"] = sec * 1e6;
}

void bench_prefill(benchmark::State& state, int S, int q_len, KvDtype dt, bool fast) {
  std::string why;
  if (!device_available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  const Setup s = make_setup(S, q_len, dt);  // ctx_after = q_len: a fresh prompt
  const int q_stride = (kHeads + 2 * kKvHeads) * kDim;
  const size_t T = size_t(S) * q_len;
  Buf<bf16> q(T * q_stride), out(T * kHeads * kDim);
  TWINFER_CUDA_CHECK(cudaMemset(q.p, 0x3C, T * q_stride * sizeof(bf16)));
  std::vector<int32_t> q_start(S + 1), ctx(S, q_len);
  for (int i = 0; i <= S; ++i) q_start[i] = i * q_len;
  Buf<int32_t> dq(S + 1), dctx(S);
  TWINFER_CUDA_CHECK(cudaMemcpy(dq.p, q_start.data(), (S + 1) * 4, cudaMemcpyHostToDevice));
  TWINFER_CUDA_CHECK(cudaMemcpy(dctx.p, ctx.data(), S * 4, cudaMemcpyHostToDevice));
  const float scale = 1.f / std::sqrt(float(kDim));
  const double sec = time_loop(state, [&](int) {
    if (fast)
      paged_prefill_attention(q.p, q_stride, S, dq.p, dctx.p, s.table(0), s.mbps, s.kv(0), kHeads,
                              scale, q_len, out.p, nullptr);
    else
      lab::paged_prefill_attention_v1(q.p, q_stride, S, dq.p, dctx.p, s.table(0), s.mbps,
                                      s.kv(0), kHeads, scale, q_len, out.p, nullptr);
  });
  const double flops = 4.0 * S * q_len * (q_len / 2.0) * kDim * kHeads;
  state.counters["TFLOP/s"] = sec > 0 ? flops / sec / 1e12 : 0;
  state.counters["us"] = sec * 1e6;
}

int register_all() {
  for (bool fast : {false, true}) {
    const std::string ver = fast ? "fast" : "v1";
    for (KvDtype dt : {KvDtype::bf16, KvDtype::fp8_e4m3}) {
      const std::string d = dt == KvDtype::bf16 ? "bf16" : "fp8";
      for (auto [B, ctx] : {std::pair{64, 4096}, std::pair{1, 4096}, std::pair{32, 1024}, std::pair{1, 256},
                             std::pair{256, 1152}})
        benchmark::RegisterBenchmark(
            ("attention_decode/" + ver + "/" + d + "/B" + std::to_string(B) + "_ctx" +
             std::to_string(ctx)).c_str(),
            [=](benchmark::State& st) { bench_decode(st, B, ctx, dt, fast); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      for (auto [S, q_len] : {std::pair{1, 4096}, std::pair{8, 512}})
        benchmark::RegisterBenchmark(
            ("attention_prefill/" + ver + "/" + d + "/S" + std::to_string(S) + "_q" +
             std::to_string(q_len)).c_str(),
            [=](benchmark::State& st) { bench_prefill(st, S, q_len, dt, fast); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}
[[maybe_unused]] const int registered = register_all();

}  // namespace
