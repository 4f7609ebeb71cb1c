// Error checking and device discovery shared by every launcher.
#include <atomic>
#include <string>

#include "kernels/ops.h"

namespace twinfer::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw CudaError(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

void check_launch(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw CudaError(std::string("launch of ") + kernel + ": " + cudaGetErrorName(e) + " (" +
                    cudaGetErrorString(e) + ")");
}

namespace {
// -1: not decided yet (decided on first use from the current device), 0 off, 1 on.
std::atomic<int> g_pdl{-1};

bool device_supports_pdl() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    cudaGetLastError();  // no device: launches fail later with their own message
    return false;
  }
  return major >= 9;
}
}  // namespace

void set_pdl(bool on) { g_pdl.store(on && device_supports_pdl() ? 1 : 0); }

bool pdl_enabled() {
  int v = g_pdl.load(std::memory_order_relaxed);
  if (v < 0) {
    v = device_supports_pdl() ? 1 : 0;
    g_pdl.store(v);
  }
  return v == 1;
}

bool device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device present";
    return false;
  }
  return true;
}

}  // namespace twinfer::cuda
