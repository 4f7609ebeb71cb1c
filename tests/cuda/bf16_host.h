// Host-side bf16/fp8 helpers shared by the elementwise and GEMM GPU tests.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace twinfer::test {

using cuda::bf16;

inline float rbf(float x) { return __bfloat162float(__float2bfloat16(x)); }

// n draws of N(mean, std), rounded to bf16; returned as bf16 and as the exact float values.
inline std::vector<bf16> randn_bf16(size_t n, float std, uint32_t seed, std::vector<float>* as_f32,
                                    float mean = 0.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, std);
  std::vector<bf16> h(n);
  if (as_f32) as_f32->resize(n);
  for (size_t i = 0; i < n; ++i) {
    h[i] = __float2bfloat16(d(rng));
    if (as_f32) (*as_f32)[i] = __bfloat162float(h[i]);
  }
  return h;
}

inline std::vector<float> to_f32(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = __bfloat162float(v[i]);
  return f;
}

inline float fp8_to_f32(uint8_t b) {
  __nv_fp8_e4m3 f;
  f.__x = b;
  return float(f);
}

}  // namespace twinfer::test
