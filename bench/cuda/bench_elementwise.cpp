// Elementwise kernels at Llama-3-8B sizes (H 4096, I 14336, 32 q / 8 kv heads of 128): "GB/s"
// counts the bytes each kernel must move (reads + writes), the roofline is HBM (~3.0 TB/s).
// T = 1 is launch-latency bound; T >= 256 should approach bandwidth.
#include <cmath>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.h"

using namespace twinfer;
using namespace twinfer::bench;
using twinfer::cuda::bf16;

namespace {

constexpr int kH = 4096, kI = 14336, kHeads = 32, kKv = 8, kHd = 128;

void report(benchmark::State& state, double bytes) {
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_RmsNorm(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int T = int(state.range(0));
  const bool add = state.range(1) != 0;
  const size_t n = size_t(T) * kH;
  const int copies = rotation_copies(n * 2 * (add ? 4 : 2));
  DeviceArray<bf16> x(n * copies), d(n * copies), o(n * copies), w(kH);
  cuda::fill_normal(x.p, n * copies, 1.f, 1, nullptr);
  cuda::fill_normal(d.p, n * copies, 1.f, 2, nullptr);
  cuda::fill_normal(w.p, kH, 1.f, 3, nullptr);
  const int reps = copies < 4 ? 4 : copies;
  time_launches(state, reps, [&](int i) {
    const size_t off = (i % copies) * n;
    if (add) cuda::add_rms_norm(x.p + off, d.p + off, w.p, T, kH, 1e-5f, o.p + off, nullptr);
    else cuda::rms_norm(x.p + off, w.p, T, kH, 1e-5f, o.p + off, nullptr);
  });
  report(state, double(n) * 2 * (add ? 4 : 2));
  state.SetLabel(std::string(add ? "add_rms_norm" : "rms_norm") + " T=" + std::to_string(T));
}

void BM_SiluMul(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int T = int(state.range(0));
  const size_t n = size_t(T) * kI;
  const int copies = rotation_copies(n * 2 * 3);
  DeviceArray<bf16> gu(2 * n * copies), o(n * copies);
  cuda::fill_normal(gu.p, 2 * n * copies, 1.f, 4, nullptr);
  const int reps = copies < 4 ? 4 : copies;
  time_launches(state, reps, [&](int i) {
    cuda::silu_mul(gu.p + (i % copies) * 2 * n, T, kI, o.p + (i % copies) * n, nullptr);
  });
  report(state, double(n) * 2 * 3);
  state.SetLabel("silu_mul T=" + std::to_string(T));
}

void BM_RopeKv(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int T = int(state.range(0));
  const bool fp8 = state.range(1) != 0;
  const int width = (kHeads + 2 * kKv) * kHd;
  const size_t n = size_t(T) * width;
  const int block_size = 16, num_blocks = (T + block_size - 1) / block_size;
  const size_t cache = size_t(num_blocks) * block_size * kKv * kHd;
  const size_t esz = fp8 ? 1 : 2;
  // q and k read + written, v read, k and v written to the cache.
  const double bytes = double(T) * (2.0 * 2 * (kHeads + kKv) * kHd + 2.0 * kKv * kHd + 2.0 * esz * kKv * kHd);
  const int copies = rotation_copies(size_t(bytes));
  DeviceArray<bf16> qkv(n * copies);
  DeviceArray<uint8_t> kc(cache * esz * copies), vc(cache * esz * copies);
  DeviceArray<int32_t> pos(T);
  DeviceArray<int64_t> slots(T);
  DeviceArray<float> inv_freq(kHd / 2), scales(2);
  cuda::fill_normal(qkv.p, n * copies, 1.f, 5, nullptr);
  std::vector<int32_t> hp(T);
  std::vector<int64_t> hs(T);
  for (int t = 0; t < T; ++t) hp[t] = t, hs[t] = t;
  std::vector<float> hf(kHd / 2);
  for (int i = 0; i < kHd / 2; ++i) hf[i] = float(std::pow(500000.0, -2.0 * i / kHd));
  const float hsc[2] = {0.05f, 0.05f};
  TWINFER_CUDA_CHECK(cudaMemcpy(pos.p, hp.data(), T * 4, cudaMemcpyHostToDevice));
  TWINFER_CUDA_CHECK(cudaMemcpy(slots.p, hs.data(), T * 8, cudaMemcpyHostToDevice));
  TWINFER_CUDA_CHECK(cudaMemcpy(inv_freq.p, hf.data(), hf.size() * 4, cudaMemcpyHostToDevice));
  TWINFER_CUDA_CHECK(cudaMemcpy(scales.p, hsc, 8, cudaMemcpyHostToDevice));
  const int reps = copies < 4 ? 4 : copies;
  time_launches(state, reps, [&](int i) {
    cuda::PagedKV kv;
    kv.k = kc.p + (i % copies) * cache * esz;
    kv.v = vc.p + (i % copies) * cache * esz;
    kv.num_blocks = num_blocks;
    kv.block_size = block_size;
    kv.n_kv_heads = kKv;
    kv.head_dim = kHd;
    kv.dtype = fp8 ? cuda::KvDtype::fp8_e4m3 : cuda::KvDtype::bf16;
    kv.k_scale = scales.p;
    kv.v_scale = scales.p + 1;
    cuda::rope_kv_write(qkv.p + (i % copies) * n, nullptr, T, pos.p, inv_freq.p, kHeads, kKv, kHd,
                        slots.p, kv, nullptr);
  });
  report(state, bytes);
  state.SetLabel(std::string("rope_kv_write ") + (fp8 ? "fp8" : "bf16") + " T=" + std::to_string(T));
}

}  // namespace

BENCHMARK(BM_RmsNorm)->ArgsProduct({{1, 256, 4096, 16384}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SiluMul)->Arg(1)->Arg(256)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RopeKv)->ArgsProduct({{1, 256, 4096}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);
