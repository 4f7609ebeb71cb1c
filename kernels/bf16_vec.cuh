// bf16 helpers shared by the forward's elementwise kernels and the small-T GEMV: a 16-byte
// vector of 8 bf16 to and from 8 floats, and rounding a float through bf16 (the model-dtype
// rounding Hugging Face's bf16 forward applies after each op).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace twinfer::cuda {

__device__ __forceinline__ void unpack8(const uint4& v, float f[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

__device__ __forceinline__ uint4 pack8(const float f[8]) {
  uint4 v;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
  return v;
}

__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

}  // namespace twinfer::cuda
