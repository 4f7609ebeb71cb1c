// GpuSampler per call (upload of parameters, kernels, token download and sync), rows x 128256
// fp32 logits: greedy (argmax-only path, one read of the logits), top-p 0.9 at T 0.7 (three
// reads: max, probabilities/sums, head collection) and T 1 / top_p 1 / top_k -1, vLLM's
// default (id-order draw, no sort: max, kept mass, then on average half a read to the
// crossing). GB/s counts one read of the logits.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/request.h"
#include "kernels/ops.h"
#include "kernels/sampler.h"

namespace {

using twinfer::SamplingParams;
using twinfer::cuda::GpuSampler;
using twinfer::cuda::SampleRow;

constexpr int64_t kVocab = 128256;

enum class Mode { kGreedy, kTopP, kTemp1 };

void run(benchmark::State& state, Mode mode) {
  std::string why;
  if (!twinfer::cuda::device_available(&why)) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int rows = static_cast<int>(state.range(0));
  // Several copies of the batch rotate so that their total exceeds L2 (50 MB).
  const size_t per = static_cast<size_t>(rows) * kVocab;
  const int copies = static_cast<int>(std::max<size_t>(2, (200u << 20) / (per * sizeof(float)) + 1));
  std::vector<float> h(per);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::uniform_int_distribution<int64_t> tok(0, kVocab - 1);
  for (int r = 0; r < rows; ++r) {  // LLM-like: a few tokens far above the background
    float* l = h.data() + static_cast<size_t>(r) * kVocab;
    for (int64_t i = 0; i < kVocab; ++i) l[i] = nd(rng);
    for (int j = 0; j < 12; ++j) l[tok(rng)] += 6.0f + static_cast<float>(j);
  }
  float* d = nullptr;
  TWINFER_CUDA_CHECK(cudaMalloc(&d, per * sizeof(float) * copies));
  for (int c = 0; c < copies; ++c)
    TWINFER_CUDA_CHECK(cudaMemcpy(d + per * c, h.data(), per * sizeof(float), cudaMemcpyHostToDevice));
  GpuSampler sampler(kVocab, rows, {kVocab - 1});
  SamplingParams p;
  if (mode == Mode::kGreedy) {
    p.temperature = 0;
  } else if (mode == Mode::kTopP) {
    p.temperature = 0.7;
    p.top_p = 0.9;
  }  // kTemp1: the defaults (temperature 1, top_p 1, top_k -1, min_p 0)
  std::vector<SampleRow> sr(rows, SampleRow{&p, {}, {}, 0});
  std::vector<int32_t> out(rows);
  cudaStream_t s;
  TWINFER_CUDA_CHECK(cudaStreamCreate(&s));
  cudaEvent_t a, b;
  TWINFER_CUDA_CHECK(cudaEventCreate(&a));
  TWINFER_CUDA_CHECK(cudaEventCreate(&b));
  int it = 0;
  for (auto _ : state) {
    for (int r = 0; r < rows; ++r) sr[r].key = static_cast<uint64_t>(it * rows + r);
    TWINFER_CUDA_CHECK(cudaEventRecord(a, s));
    sampler.sample(d + per * (it % copies), sr, out, s);
    TWINFER_CUDA_CHECK(cudaEventRecord(b, s));
    TWINFER_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    TWINFER_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(ms * 1e-3);
    ++it;
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(per * sizeof(float)) * state.iterations(),
                                              benchmark::Counter::kIsRate);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaStreamDestroy(s);
  cudaFree(d);
}

void BM_GpuSampleGreedy(benchmark::State& state) { run(state, Mode::kGreedy); }
void BM_GpuSampleTopP(benchmark::State& state) { run(state, Mode::kTopP); }
void BM_GpuSampleTemp1(benchmark::State& state) { run(state, Mode::kTemp1); }

}  // namespace

BENCHMARK(BM_GpuSampleGreedy)->Arg(1)->Arg(64)->Arg(256)->UseManualTime();
BENCHMARK(BM_GpuSampleTopP)->Arg(1)->Arg(64)->Arg(256)->UseManualTime();
BENCHMARK(BM_GpuSampleTemp1)->Arg(1)->Arg(64)->Arg(256)->UseManualTime();
