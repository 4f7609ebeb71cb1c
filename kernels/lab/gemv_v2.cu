// GEMV lab v2: the bandwidth-bound small-T path. y[T, out] = x[T, in] W^T is W-read bound for
// T <= ~16 (2 bytes per weight, 2T FLOPs per weight), so the design only cares about streaming W
// once at full HBM bandwidth:
// - warp-per-R-rows: each warp owns R consecutive rows of W and all T (<= 8) inputs, so W is
//   read exactly once and each x vector loaded is reused R times;
// - 16-byte loads of W with ld.global.nc.L1::no_allocate (W streams past L1, leaving it to x),
//   U vectors per row per lane issued before any math, U * R = 8 loads (128 B) in flight/lane;
// - x read through L1 (__ldg): it is T * in * 2 bytes (<= 229 KB at in = 14336), shared by all
//   warps, so it stays L1/L2 resident; no shared-memory staging or __syncthreads needed;
// - fp32 accumulators acc[R][T] in registers, butterfly shuffle reduction at the end.
#include <string>

#include "kernels/lab/gemv_lab.h"

namespace twinfer::cuda::lab {
namespace {

constexpr int kThreads = 128;  // 4 warps per block: fine-grained blocks spread evenly over SMs
constexpr int kMaxT = 8;       // rows of x per launch; larger T is chunked

__device__ __forceinline__ uint4 ld_stream(const bf16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ void unpack8(const uint4& v, float f[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = __bfloat1622float2(h[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

template <class OutT>
__device__ __forceinline__ OutT to_out(float v);
template <>
__device__ __forceinline__ bf16 to_out<bf16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ float to_out<float>(float v) { return v; }

// grid (ceil(out / (R * 4))), block (128). x [T, in], W [out, in], y [T, out]; in % 8 == 0 and
// x, W 16-byte aligned (the launcher checks), so vector v of a row is elements 8v .. 8v+7.
template <int T, int R, class OutT>
__global__ void __launch_bounds__(kThreads)
    kernel_gemv_v2(const bf16* __restrict__ x, int in, const bf16* __restrict__ W, int out,
                   OutT* __restrict__ y) {
  constexpr int U = 8 / R;
  const int warp = (blockIdx.x * kThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int row0 = warp * R;
  if (row0 >= out) return;
  const int nvec = in / 8;
  // Rows past `out` (last warp only) re-read row out-1 and are never stored.
  const bf16* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r) wrow[r] = W + int64_t(min(row0 + r, out - 1)) * in;

  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) acc[r][t] = 0.f;

  for (int base = lane; base < nvec; base += 32 * U) {
    uint4 w[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r) w[u][r] = v < nvec ? ld_stream(wrow[r] + 8 * v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + 32 * u;
      if (v >= nvec) break;
      float wf[R][8];
#pragma unroll
      for (int r = 0; r < R; ++r) unpack8(w[u][r], wf[r]);
#pragma unroll
      for (int t = 0; t < T; ++t) {
        float xf[8];
        unpack8(__ldg(reinterpret_cast<const uint4*>(x + int64_t(t) * in) + v), xf);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[r][t] = fmaf(wf[r][j], xf[j], acc[r][t]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], o);
  // After the butterfly every lane holds every sum; lane (r * T + t) % 32 stores (r, t).
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t)
      if (lane == (r * T + t) % 32 && row0 + r < out) y[int64_t(t) * out + row0 + r] = to_out<OutT>(acc[r][t]);
}

template <int T, class OutT>
void launch_rows(int R, const bf16* x, int in, const bf16* W, int out, OutT* y, cudaStream_t s) {
  const int rows_per_block = R * (kThreads / 32);
  const int grid = (out + rows_per_block - 1) / rows_per_block;
  switch (R) {
    case 1: kernel_gemv_v2<T, 1, OutT><<<grid, kThreads, 0, s>>>(x, in, W, out, y); break;
    case 2: kernel_gemv_v2<T, 2, OutT><<<grid, kThreads, 0, s>>>(x, in, W, out, y); break;
    default: kernel_gemv_v2<T, 4, OutT><<<grid, kThreads, 0, s>>>(x, in, W, out, y); break;
  }
}

// Rows per warp: as many as keep >= ~16 warps per SM (132 SMs) busy, so small `out` still
// fills the GPU; at T >= 4 at least 2 so the per-W-byte x traffic through L1 stays < ~4x.
int pick_rows(int T, int out) {
  constexpr int kWarpsWanted = 132 * 16;
  int R = out >= 4 * kWarpsWanted ? 4 : out >= 2 * kWarpsWanted ? 2 : 1;
  if (T >= 4 && R < 2) R = 2;
  return R;
}

template <class OutT>
void launch_v2(const bf16* x, int T, int in, const bf16* W, int out, OutT* y, cudaStream_t s) {
  if (T < 0 || in <= 0 || out <= 0)
    throw CudaError("gemv_v2: need T >= 0, in > 0, out > 0, got T=" + std::to_string(T) +
                    " in=" + std::to_string(in) + " out=" + std::to_string(out));
  if (!gemv_v2_applicable(x, in, W))
    throw CudaError("gemv_v2: needs in % 8 == 0 and 16-byte aligned x and W, got in=" +
                    std::to_string(in));
  for (int t0 = 0; t0 < T; t0 += kMaxT) {
    const int tc = T - t0 < kMaxT ? T - t0 : kMaxT;
    const bf16* xc = x + int64_t(t0) * in;
    OutT* yc = y + int64_t(t0) * out;
    const int R = pick_rows(tc, out);
    switch (tc) {
      case 1: launch_rows<1>(R, xc, in, W, out, yc, s); break;
      case 2: launch_rows<2>(R, xc, in, W, out, yc, s); break;
      case 3: launch_rows<3>(R, xc, in, W, out, yc, s); break;
      case 4: launch_rows<4>(R, xc, in, W, out, yc, s); break;
      case 5: launch_rows<5>(R, xc, in, W, out, yc, s); break;
      case 6: launch_rows<6>(R, xc, in, W, out, yc, s); break;
      case 7: launch_rows<7>(R, xc, in, W, out, yc, s); break;
      default: launch_rows<8>(R, xc, in, W, out, yc, s); break;
    }
    check_launch("kernel_gemv_v2");
  }
}

}  // namespace

bool gemv_v2_applicable(const bf16* x, int in, const bf16* W) {
  return in % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15u) == 0 &&
         (reinterpret_cast<uintptr_t>(W) & 15u) == 0;
}
void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  launch_v2(x, T, in, W, out, y, s);
}
void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  launch_v2(x, T, in, W, out, y, s);
}

}  // namespace twinfer::cuda::lab
