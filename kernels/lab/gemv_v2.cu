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
#include <algorithm>
#include <initializer_list>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/bf16_vec.cuh"
#include "kernels/lab/gemv_common.cuh"
#include "kernels/lab/gemv_lab.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda::lab {
namespace {

// Default block: 8 warps. 256 threads measured faster than 128 in the batch-1 decode step (H100,
// graphs: 168.4-169.0 vs 166.8-167.2 tok/s, kernels/lab/NOTES_gemm.md); the fused norm's sum
// is split over kNormThreads whatever the block size, so the bits do not depend on it.
constexpr int kThreads = 256;
constexpr int kMaxThreads = 512;  // the kernel indexes by blockDim.x up to this

// Measurement switches (docs/gpu.md), read once:
// TWINFER_GEMV_THREADS=128|256|512 sets the block size;
// TWINFER_GEMV_WARPS=N sets the warps per SM that pick_rows keeps busy (default 16): fewer
// means more rows per warp, so fewer warps and registers, more reuse of each x vector.
int env_choice(const char* name, int dflt, std::initializer_list<int> allowed, const char* expect) {
  const char* e = std::getenv(name);
  if (!e) return dflt;
  const int t = std::atoi(e);
  for (int a : allowed)
    if (t == a) return t;
  throw CudaError(std::string(name) + "=" + e + ": expected " + expect);
}
int gemv_threads() {
  static const int v = env_choice("TWINFER_GEMV_THREADS", kThreads, {128, 256, 512}, "128, 256 or 512");
  return v;
}
int gemv_warps_per_sm() {
  static const int v = env_choice("TWINFER_GEMV_WARPS", 16, {4, 8, 16, 32}, "4, 8, 16 or 32");
  return v;
}
constexpr int kMaxT = 8;       // rows of x per launch; larger T is chunked

__device__ __forceinline__ uint4 ld_stream(const bf16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// The same load as asm volatile: the compiler keeps it in program order before pdl_wait().
__device__ __forceinline__ uint4 ld_stream_early(const bf16* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// grid (ceil(out / (RO * warps per block))), block gemv_threads(). x [T, in], W [*, in], y [T, out]; in % 8 == 0 and
// x, W 16-byte aligned (the launcher checks), so vector v of a row is elements 8v .. 8v+7.
// Plain: W is [out, in], a warp owns rows row0 .. row0+R-1 (RO = R outputs).
// kGateUp: W is [2 out, in] (gate rows, then up rows), out = I; a warp owns gate rows
// row0 .. row0+R/2-1 and the matching up rows out+row0 .., and writes y = act [T, I] =
// bf16(bf16(silu(bf16 g)) * bf16 u), the roundings of gemv + silu_mul. Each row's fp32 sum is
// accumulated in the same order whatever R is (lane's vectors v = lane, lane+32, .., then the
// butterfly), so every variant gives the same bits per output row.
// PDL: the first batch of W loads is issued before pdl_wait() (W is constant), x is read and y
// written only after it.
template <int T, int R, class OutT, bool kGateUp, bool kNorm = false, bool kAdd = false>
__global__ void __launch_bounds__(kMaxThreads)
    kernel_gemv_v2(const bf16* __restrict__ x, int in, const bf16* __restrict__ W, int out,
                   OutT* __restrict__ y, GemvFusion fz) {
  constexpr int U = 8 / R;
  constexpr int RO = kGateUp ? R / 2 : R;  // output columns per warp
  static_assert(!kGateUp || R % 2 == 0, "gate/up pairs need an even R");
  static_assert(!kAdd || std::is_same_v<OutT, bf16>, "the residual is bf16");
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int row0 = warp * RO;
  // Only warps past the end leave without waiting; warp 0 always waits, which keeps the
  // completion of this grid after the completion of its predecessor (see kernels/pdl.cuh).
  // With kNorm every warp stays for the block's norm reduction (a barrier) and idles after it.
  if (!kNorm && row0 >= out) return;
  const bool active = row0 < out;
  const int nvec = in / 8;
  // Rows past `out` (last warp only) re-read row out-1 and are never stored.
  const bf16* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int c = min(row0 + r % RO, out - 1);  // output column of row r
    wrow[r] = W + int64_t(kGateUp && r >= RO ? out + c : c) * in;
  }

  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) acc[r][t] = 0.f;

  uint4 w[U][R];
  // Prologue: the first batch (vectors lane + 32u), volatile so it stays before the wait.
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int v = lane + 32 * u;
#pragma unroll
    for (int r = 0; r < R; ++r)
      w[u][r] = active && v < nvec ? ld_stream_early(wrow[r] + 8 * v) : make_uint4(0, 0, 0, 0);
  }
  pdl_trigger();
  pdl_wait();
  // kNorm: x is the residual stream; each block computes the T rows' 1/rms itself (x is tiny
  // and L1/L2 resident) and normalizes x vectors on the fly exactly as rms_norm rounds them.
  [[maybe_unused]] float inv[T];
  if constexpr (kNorm) {
    __shared__ float s_ss[kNormThreads / 32][T];
    gemv_norm_partials<T>(x, in, threadIdx.x, s_ss);
    __syncthreads();
    gemv_norm_inv<T>(s_ss, in, fz.eps, inv);
    if (!active) return;
  }

  for (int base = lane; base < nvec; base += 32 * U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int v = base + 32 * u;
      if (v >= nvec) break;
      gemv_fma_vec<T, R, kNorm>(w[u], x, in, v, fz, inv, acc);
    }
    const int next = base + 32 * U;
    if (next < nvec) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int v = next + 32 * u;
#pragma unroll
        for (int r = 0; r < R; ++r) w[u][r] = v < nvec ? ld_stream(wrow[r] + 8 * v) : make_uint4(0, 0, 0, 0);
      }
    }
  }
  gemv_store<T, R, RO, kGateUp, kAdd>(acc, lane, row0, out, y);
}

template <int T, bool kGateUp, bool kNorm, bool kAdd, class OutT>
void launch_rows(int R, const bf16* x, int in, const bf16* W, int out, OutT* y,
                 const GemvFusion& fz, cudaStream_t s) {
  const int threads = gemv_threads();
  const int outs_per_block = (kGateUp ? R / 2 : R) * (threads / 32);
  const int grid = (out + outs_per_block - 1) / outs_per_block;
  const char* name = kGateUp ? "kernel_gemv_v2 (gate/up + silu)" : "kernel_gemv_v2";
  if constexpr (kGateUp) {
    if (R == 2) launch_pdl(name, kernel_gemv_v2<T, 2, OutT, true, kNorm, kAdd>, grid, threads, 0, s, x, in, W, out, y, fz);
    else launch_pdl(name, kernel_gemv_v2<T, 4, OutT, true, kNorm, kAdd>, grid, threads, 0, s, x, in, W, out, y, fz);
  } else {
    switch (R) {
      case 1: launch_pdl(name, kernel_gemv_v2<T, 1, OutT, false, kNorm, kAdd>, grid, threads, 0, s, x, in, W, out, y, fz); break;
      case 2: launch_pdl(name, kernel_gemv_v2<T, 2, OutT, false, kNorm, kAdd>, grid, threads, 0, s, x, in, W, out, y, fz); break;
      default: launch_pdl(name, kernel_gemv_v2<T, 4, OutT, false, kNorm, kAdd>, grid, threads, 0, s, x, in, W, out, y, fz); break;
    }
  }
}

// Rows per warp: as many as keep >= ~16 warps per SM (132 SMs; TWINFER_GEMV_WARPS) busy, so small `out` still
// fills the GPU; at T >= 4 at least 2 so the per-W-byte x traffic through L1 stays < ~4x.
int pick_rows(int T, int out) {
  const int warps_wanted = 132 * gemv_warps_per_sm();
  int R = out >= 4 * warps_wanted ? 4 : out >= 2 * warps_wanted ? 2 : 1;
  if (T >= 4 && R < 2) R = 2;
  return R;
}

// kGateUp: `out` is I (act columns) and W has 2I rows.
template <bool kGateUp, bool kNorm, bool kAdd, class OutT>
void launch_v2(const bf16* x, int T, int in, const bf16* W, int out, OutT* y, GemvFusion fz,
               cudaStream_t s) {
  if (T < 0 || in <= 0 || out <= 0)
    throw CudaError("gemv_v2: need T >= 0, in > 0, out > 0, got T=" + std::to_string(T) +
                    " in=" + std::to_string(in) + " out=" + std::to_string(out));
  if (!gemv_v2_applicable(x, in, W))
    throw CudaError("gemv_v2: needs in % 8 == 0 and 16-byte aligned x and W, got in=" +
                    std::to_string(in));
  if (kNorm && (fz.norm_w == nullptr || (reinterpret_cast<uintptr_t>(fz.norm_w) & 15u) != 0))
    throw CudaError("gemv_v2 (fused RMSNorm): the norm weight must be non-null and 16-byte aligned");
  for (int t0 = 0; t0 < T; t0 += kMaxT) {
    const int tc = T - t0 < kMaxT ? T - t0 : kMaxT;
    const bf16* xc = x + int64_t(t0) * in;
    OutT* yc = y + int64_t(t0) * out;
    // Gate/up: rows are picked over all 2I rows of W, at least one gate/up pair per warp.
    const int R = kGateUp ? std::max(2, pick_rows(tc, 2 * out)) : pick_rows(tc, out);
    switch (tc) {
      case 1: launch_rows<1, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 2: launch_rows<2, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 3: launch_rows<3, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 4: launch_rows<4, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 5: launch_rows<5, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 6: launch_rows<6, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      case 7: launch_rows<7, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
      default: launch_rows<8, kGateUp, kNorm, kAdd>(R, xc, in, W, out, yc, fz, s); break;
    }
  }
}

}  // namespace

bool gemv_v2_applicable(const bf16* x, int in, const bf16* W) {
  return in % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15u) == 0 &&
         (reinterpret_cast<uintptr_t>(W) & 15u) == 0;
}
void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  launch_v2<false, false, false>(x, T, in, W, out, y, GemvFusion{}, s);
}
void gemv_v2(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  launch_v2<false, false, false>(x, T, in, W, out, y, GemvFusion{}, s);
}
void gemv_v2_gate_up_silu(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                          cudaStream_t s) {
  launch_v2<true, false, false>(x, T, in, W_gu, I, act, GemvFusion{}, s);
}
void gemv_v2_norm(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                  int out, bf16* y, cudaStream_t s) {
  launch_v2<false, true, false>(x, T, in, W, out, y, GemvFusion{norm_w, eps}, s);
}
void gemv_v2_norm_gate_up_silu(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                               const bf16* W_gu, int I, bf16* act, cudaStream_t s) {
  launch_v2<true, true, false>(x, T, in, W_gu, I, act, GemvFusion{norm_w, eps}, s);
}
void gemv_v2_add(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                 cudaStream_t s) {
  launch_v2<false, false, true>(x, T, in, W, out, residual, GemvFusion{}, s);
}

}  // namespace twinfer::cuda::lab
