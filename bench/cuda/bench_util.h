// Shared helpers of the CUDA benchmarks: event timing of a batch of launches, rotating over
// buffer copies so bandwidth numbers are not L2 hits (H100: 50 MB L2).
#pragma once
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "kernels/ops.h"

namespace twinfer::bench {

// Copies of a `bytes`-sized working set needed so that consecutive launches touch >= 200 MB.
inline int rotation_copies(size_t bytes) {
  const size_t want = size_t(200) << 20;
  return bytes >= want ? 1 : int((want + bytes - 1) / bytes);
}

inline bool skip_without_gpu(benchmark::State& state) {
  std::string why;
  if (cuda::device_available(&why)) return false;
  state.SkipWithError(("no GPU: " + why).c_str());
  return true;
}

// Runs `launch(i)` for i = 0..reps-1 between two events per benchmark iteration and reports
// the mean per-launch GPU time as the manual time.
template <class F>
void time_launches(benchmark::State& state, int reps, F&& launch) {
  cudaEvent_t a, b;
  TWINFER_CUDA_CHECK(cudaEventCreate(&a));
  TWINFER_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < reps; ++i) launch(i);  // warm-up (cuBLAS heuristics, caches, clocks)
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto _ : state) {
    TWINFER_CUDA_CHECK(cudaEventRecord(a, nullptr));
    for (int i = 0; i < reps; ++i) launch(i);
    TWINFER_CUDA_CHECK(cudaEventRecord(b, nullptr));
    TWINFER_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    TWINFER_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(ms * 1e-3 / reps);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

// A device allocation freed on scope exit.
template <class T>
struct DeviceArray {
  T* p = nullptr;
  explicit DeviceArray(size_t n) { TWINFER_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T) + 16)); }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
};

}  // namespace twinfer::bench
