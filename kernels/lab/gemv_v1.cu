// GEMV lab v1: the simple, obviously-correct version. One warp per output row; lanes stride the
// row with scalar (2-byte, coalesced) loads; one pass over the W row per input row t (repeat
// passes hit L1/L2). About 1/4 to 1/2 of bandwidth: the reference the fast version is checked
// against, and the fallback for shapes v2 does not take (in % 8 != 0, unaligned pointers).
#include <string>

#include "kernels/lab/gemv_common.cuh"
#include "kernels/lab/gemv_lab.h"

namespace twinfer::cuda::lab {
namespace {

// grid (ceil(out / 4)), block (128): warp w of the grid owns output row w of y [T, out].
template <class OutT>
__global__ void kernel_gemv_v1(const bf16* __restrict__ x, int T, int in,
                               const bf16* __restrict__ W, int out, OutT* __restrict__ y) {
  const int row = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= out) return;
  const bf16* w = W + int64_t(row) * in;
  for (int t = 0; t < T; ++t) {
    const bf16* xr = x + int64_t(t) * in;
    float acc = 0.f;
    for (int k = lane; k < in; k += 32) acc += __bfloat162float(w[k]) * __bfloat162float(xr[k]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) y[int64_t(t) * out + row] = to_out<OutT>(acc);
  }
}

template <class OutT>
void launch_v1(const bf16* x, int T, int in, const bf16* W, int out, OutT* y, cudaStream_t s) {
  if (T < 0 || in <= 0 || out <= 0)
    throw CudaError("gemv_v1: need T >= 0, in > 0, out > 0, got T=" + std::to_string(T) +
                    " in=" + std::to_string(in) + " out=" + std::to_string(out));
  if (T == 0) return;
  constexpr int th = 128, warps = th / 32;
  kernel_gemv_v1<OutT><<<(out + warps - 1) / warps, th, 0, s>>>(x, T, in, W, out, y);
  check_launch("kernel_gemv_v1");
}

}  // namespace

void gemv_v1(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  launch_v1(x, T, in, W, out, y, s);
}
void gemv_v1(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  launch_v1(x, T, in, W, out, y, s);
}

}  // namespace twinfer::cuda::lab
