// Weight prefetch into L2 for the latency-bound gaps of a small decode step.
//
// Why: at batch 1 decode attention is a chain of dependent round trips (~16 us a layer for
// 128-384 keys) while HBM sits mostly idle; the o_proj GEMV after it can only hold about half of
// its 32 MB of weights in registers before its dependency wait. A bulk L2 prefetch of the rest,
// issued when attention starts, moves those bytes during the idle window, and o_proj then reads
// them from L2. Issued after pdl_wait() so it does not compete with the qkv GEMV's stream.
// Each range is [rows, row_bytes] at `pitch`, from byte `skip` of every row.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/ops.h"
#include "kernels/pdl.cuh"

namespace twinfer::cuda {
namespace {

constexpr int kThreads = 128;
constexpr uint32_t kChunk = 16384;  // bytes per prefetch instruction

__global__ void __launch_bounds__(kThreads)
    kernel_l2_prefetch(const uint8_t* __restrict__ base, int64_t rows, int64_t pitch, int64_t skip,
                       int64_t len) {
  pdl_trigger();
  pdl_wait();
  const int64_t per_row = (len + kChunk - 1) / kChunk;
  const int64_t n = rows * per_row;
  for (int64_t i = blockIdx.x * int64_t(kThreads) + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const int64_t r = i / per_row, c = i % per_row;
    const int64_t off = c * kChunk;
    const uint32_t bytes = uint32_t(len - off < kChunk ? len - off : kChunk);
    const uint8_t* p = base + r * pitch + skip + off;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
    (void)p;
    (void)bytes;
#endif
  }
}

}  // namespace

void l2_prefetch_rows(const void* base, int64_t rows, int64_t pitch, int64_t skip, int64_t len,
                      cudaStream_t s) {
  const auto a = reinterpret_cast<uintptr_t>(base);
  if (rows < 0 || len < 0 || skip < 0 || skip + len > pitch)
    throw CudaError("l2_prefetch_rows: need rows, len, skip >= 0 and skip + len <= pitch, got rows=" +
                    std::to_string(rows) + " pitch=" + std::to_string(pitch) + " skip=" +
                    std::to_string(skip) + " len=" + std::to_string(len));
  if (a % 16 != 0 || pitch % 16 != 0 || skip % 16 != 0 || len % 16 != 0)
    throw CudaError("l2_prefetch_rows: base, pitch, skip and len must be multiples of 16 bytes");
  if (rows == 0 || len == 0) return;
  const int64_t n = rows * ((len + kChunk - 1) / kChunk);
  const int grid = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 132));
  launch_pdl("kernel_l2_prefetch", kernel_l2_prefetch, grid, kThreads, 0, s,
             static_cast<const uint8_t*>(base), rows, pitch, skip, len);
}

}  // namespace twinfer::cuda
