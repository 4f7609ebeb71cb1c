// GEMV lab v3: v2's arithmetic with W streamed by the copy engine (TMA bulk copies into a ring
// of shared-memory stages), for T <= 2 on sm_90.
//
// Why: v2 keeps W in flight in registers, 8 x 16 bytes per lane. At out = 4096 (o_proj, down)
// that is ~31 warps per SM, ~124 KB in flight, and those GEMVs ran at 2.4-2.7 TB/s while
// gate/up (more warps) ran at 3.0; by Little's law the loaded HBM latency (~6 us) needs
// ~140+ KB in flight per SM. A bulk copy costs one instruction per row segment and no
// registers, so a block keeps `stages` x 16 KB in flight whatever its warp count.
//
// Layout: block = kNW consumer warps + 1 producer warp; 2 blocks per SM, persistent over row
// groups (group = kNW warps x R rows, v2's row-to-warp mapping with R = 1, or 2 for gate/up).
// A group's rows are streamed in column chunks of kChunk / R elements (multiples of 256, so a
// lane sees the vectors v = lane, lane + 32, ... of its rows in v2's order: same bits as v2);
// one stage = the chunk of every row of the group. The producer fills stage s after the
// consumers released it (mbarrier `empty[s]`); the consumers wait on `full[s]`, whose
// transaction count the copies complete.
// PDL: the producer never touches activations, so it starts streaming W before the dependency
// wait; consumers wait before reading x.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/lab/gemv_common.cuh"
#include "kernels/lab/gemv_lab.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda::lab {
namespace {

constexpr int kNW = 4;                // consumer warps: 128 threads, as v2's default block
constexpr int kThreads = (kNW + 1) * 32;
constexpr int kStageBytes = 16384;    // per stage: kNW * R rows x (kChunk / R) bf16
constexpr int kChunk = kStageBytes / 2 / kNW;  // elements per row chunk at R = 1 (2048)
constexpr int kBarBytes = 256;                 // full[13] + empty[13] mbarriers, padded

// Measurement switch (docs/gpu.md): TWINFER_GEMV_STAGES (2..13) sets the ring depth.
int v3_stages() {
  static const int v = [] {
    const char* e = std::getenv("TWINFER_GEMV_STAGES");
    if (!e) return 6;
    const int n = std::atoi(e);
    if (n < 2 || n > 13) throw CudaError(std::string("TWINFER_GEMV_STAGES=") + e + ": expected 2..13");
    return n;
  }();
  return v;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // mbarrier waits and bulk copies: sm_90+
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// global -> shared bulk copy completing `bytes` on bar's transaction count; 16-byte multiples.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}

#endif

template <int T, int R, class OutT, bool kGateUp, bool kNorm, bool kAdd>
__global__ void __launch_bounds__(kThreads)
    kernel_gemv_v3(const bf16* __restrict__ x, int in, const bf16* __restrict__ W, int out,
                   OutT* __restrict__ y, GemvFusion fz, int stages) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int RO = kGateUp ? R / 2 : R;
  constexpr int kCw = kChunk / R;  // row chunk, elements
  static_assert(kCw % 256 == 0, "chunks must start at multiples of 32 vectors");
  static_assert(!kAdd || std::is_same_v<OutT, bf16>, "the residual is bf16");
  extern __shared__ __align__(128) uint8_t smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem);
  uint64_t* empty = full + stages;
  bf16* ring = reinterpret_cast<bf16*>(smem + kBarBytes);  // stage s, row slot i: ring + (s * kNW * R + i) * kCw

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rows_out = kNW * RO;  // output columns per group
  const int ngroups = (out + rows_out - 1) / rows_out;
  const int nch = (in + kCw - 1) / kCw;
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      mbar_init(full + s, 1);
      mbar_init(empty + s, kNW);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  pdl_trigger();

  if (warp == kNW) {  // producer
    int it = 0;
    for (int g = blockIdx.x; g < ngroups; g += gridDim.x)
      for (int k = 0; k < nch; ++k, ++it) {
        const int s = it % stages;
        if (it >= stages) mbar_wait(empty + s, ((it / stages) - 1) & 1);
        const int c0 = k * kCw, len = min(kCw, in - c0);
        const uint32_t seg = uint32_t(len) * 2u;
        if (lane == 0) mbar_expect_tx(full + s, seg * kNW * R);
        __syncwarp();
        for (int i = lane; i < kNW * R; i += 32) {
          const int w = i / R, r = i % R;
          const int c = min((g * kNW + w) * RO + r % RO, out - 1);  // rows past `out` re-read the last
          const bf16* src = W + int64_t(kGateUp && r >= RO ? out + c : c) * in + c0;
          bulk_copy(ring + (int64_t(s) * kNW * R + i) * kCw, src, seg, full + s);
        }
      }
    return;
  }

  pdl_wait();
  [[maybe_unused]] float inv[T];
  if constexpr (kNorm) {
    static_assert(kNW * 32 == kNormThreads, "the consumers are the norm's threads");
    __shared__ float s_ss[kNormThreads / 32][T];
    gemv_norm_partials<T>(x, in, threadIdx.x, s_ss);
    asm volatile("bar.sync 1, %0;" ::"r"(kNW * 32) : "memory");  // consumers only
    gemv_norm_inv<T>(s_ss, in, fz.eps, inv);
  }
  int it = 0;
  for (int g = blockIdx.x; g < ngroups; g += gridDim.x) {
    float acc[R][T];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < T; ++t) acc[r][t] = 0.f;
    for (int k = 0; k < nch; ++k, ++it) {
      const int s = it % stages;
      mbar_wait(full + s, (it / stages) & 1);
      const int c0 = k * kCw, nv = min(kCw, in - c0) / 8;
      const bf16* st = ring + (int64_t(s) * kNW * R + warp * R) * kCw;
#pragma unroll 4
      for (int vv = lane; vv < nv; vv += 32) {
        uint4 w[R];
#pragma unroll
        for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const uint4*>(st + r * kCw)[vv];
        gemv_fma_vec<T, R, kNorm>(w, x, in, c0 / 8 + vv, fz, inv, acc);
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(empty + s);
    }
    gemv_store<T, R, RO, kGateUp, kAdd>(acc, lane, (g * kNW + warp) * RO, out, y);
  }
#else
  __trap();  // the launcher runs v3 only on sm_90 and newer
#endif
}

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev), "multiprocessor count");
    return v;
  }();
  return n;
}

template <int T, int R, class OutT, bool kGateUp, bool kNorm, bool kAdd>
void launch_v3_t(const bf16* x, int in, const bf16* W, int out, OutT* y, const GemvFusion& fz,
                 cudaStream_t s) {
  auto kernel = kernel_gemv_v3<T, R, OutT, kGateUp, kNorm, kAdd>;
  const int stages = v3_stages();
  const size_t smem = kBarBytes + size_t(stages) * kStageBytes;
  static int per_sm = 0;  // per instantiation; the stage count is fixed for the process
  if (per_sm == 0) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "kernel_gemv_v3 shared memory");
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem),
          "kernel_gemv_v3 occupancy");
    if (per_sm < 1) throw CudaError("gemv_v3: " + std::to_string(smem) + " bytes of shared memory do not fit an SM");
  }
  const int rows_out = kNW * (kGateUp ? R / 2 : R);
  const int ngroups = (out + rows_out - 1) / rows_out;
  const int grid = std::min(ngroups, std::min(per_sm, 2) * sm_count());
  launch_pdl(kGateUp ? "kernel_gemv_v3 (gate/up + silu)" : "kernel_gemv_v3", kernel, grid, kThreads,
             smem, s, x, in, W, out, y, fz, stages);
}

template <bool kGateUp, bool kNorm, bool kAdd, class OutT>
void launch_v3(const bf16* x, int T, int in, const bf16* W, int out, OutT* y, GemvFusion fz,
               cudaStream_t s) {
  if (T < 1 || T > kGemvV3MaxT || in <= 0 || out <= 0 || !gemv_v2_applicable(x, in, W))
    throw CudaError("gemv_v3: needs 1 <= T <= " + std::to_string(kGemvV3MaxT) +
                    ", in % 8 == 0, 16-byte aligned x and W; got T=" + std::to_string(T) +
                    " in=" + std::to_string(in) + " out=" + std::to_string(out));
  if (kNorm && (fz.norm_w == nullptr || (reinterpret_cast<uintptr_t>(fz.norm_w) & 15u) != 0))
    throw CudaError("gemv_v3 (fused RMSNorm): the norm weight must be non-null and 16-byte aligned");
  constexpr int R = kGateUp ? 2 : 1;
  if (T == 1) launch_v3_t<1, R, OutT, kGateUp, kNorm, kAdd>(x, in, W, out, y, fz, s);
  else launch_v3_t<2, R, OutT, kGateUp, kNorm, kAdd>(x, in, W, out, y, fz, s);
}

}  // namespace

bool gemv_v3_supported() {
  static const bool ok = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    if (major < 9) return false;
    // Built for sm_90+? (a binary for older targets only would trap in the kernel)
    cudaFuncAttributes a{};
    if (cudaFuncGetAttributes(&a, kernel_gemv_v3<1, 1, bf16, false, false, false>) != cudaSuccess) return false;
    return a.binaryVersion >= 90;
  }();
  return ok;
}
bool gemv_v3_applicable(const bf16* x, int T, int in, const bf16* W) {
  return T >= 1 && T <= kGemvV3MaxT && gemv_v2_applicable(x, in, W) && gemv_v3_supported();
}
void gemv_v3(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s) {
  launch_v3<false, false, false>(x, T, in, W, out, y, GemvFusion{}, s);
}
void gemv_v3(const bf16* x, int T, int in, const bf16* W, int out, float* y, cudaStream_t s) {
  launch_v3<false, false, false>(x, T, in, W, out, y, GemvFusion{}, s);
}
void gemv_v3_gate_up_silu(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                          cudaStream_t s) {
  launch_v3<true, false, false>(x, T, in, W_gu, I, act, GemvFusion{}, s);
}
void gemv_v3_norm(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                  int out, bf16* y, cudaStream_t s) {
  launch_v3<false, true, false>(x, T, in, W, out, y, GemvFusion{norm_w, eps}, s);
}
void gemv_v3_norm_gate_up_silu(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                               const bf16* W_gu, int I, bf16* act, cudaStream_t s) {
  launch_v3<true, true, false>(x, T, in, W_gu, I, act, GemvFusion{norm_w, eps}, s);
}
void gemv_v3_add(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                 cudaStream_t s) {
  launch_v3<false, false, true>(x, T, in, W, out, residual, GemvFusion{}, s);
}

}  // namespace twinfer::cuda::lab
