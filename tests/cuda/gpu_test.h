// GPU tests run on the GPU machine; elsewhere (CI) they pass with a printed skip message.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/ops.h"

// Use at the top of every GPU test case.
#define TWINFER_REQUIRE_GPU()                                                  \
  do {                                                                         \
    std::string why_;                                                          \
    if (!::twinfer::cuda::device_available(&why_)) {                           \
      std::printf("SKIPPED (no GPU): %s (%s)\n", Catch::getResultCapture()     \
                  .getCurrentTestName().c_str(), why_.c_str());                \
      return;                                                                  \
    }                                                                          \
  } while (0)

namespace twinfer::test {

// ||a - b|| / ||b|| over two equally long float vectors (NaN anywhere gives NaN).
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / (den > 0 ? den : 1e-300));
}

// A device buffer freed on scope exit; tests only.
template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) { TWINFER_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T) + 1)); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& h) { TWINFER_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    TWINFER_CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  // Poisons the buffer (0xFF bytes: NaN for floats and bf16) so unwritten outputs show.
  void poison() { TWINFER_CUDA_CHECK(cudaMemset(p, 0xFF, n * sizeof(T))); }
  void zero() { TWINFER_CUDA_CHECK(cudaMemset(p, 0, n * sizeof(T))); }
};

}  // namespace twinfer::test
