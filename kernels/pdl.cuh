// Programmatic Dependent Launch (sm_90+) for the forward's kernels.
//
// A kernel launched with launch_pdl() may start while the previous kernel on the stream is still
// running. Contract every such kernel keeps:
// - before pdl_wait() it touches only memory no kernel of the step writes (weights, shapes): no
//   activation reads, no global writes;
// - every block that reads or writes activations calls pdl_wait() first (griddepcontrol.wait
//   returns once the predecessor grid has completed and its writes are visible), and at least
//   one block of every grid calls it, so "this grid completed" still implies "every earlier
//   kernel completed" for the kernel after it (the chain stays transitive);
// - pdl_trigger() (griddepcontrol.launch_dependents) lets the next kernel's blocks be scheduled
//   once every block of this grid has triggered or exited; it is only a hint, never a sync.
// Without the launch attribute (set_pdl(false), other launch paths) both instructions are
// no-ops, so the kernels are the same code either way and give identical bits.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "kernels/ops.h"

namespace twinfer::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Enqueues kernel<<<grid, block, smem, s>>>(args...), with programmatic stream serialization
// when pdl_enabled(), and checks the launch; `name` goes into the error message.
template <class... Params, class... Args>
void launch_pdl(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                cudaStream_t s, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name);
  check_launch(name);
}

}  // namespace twinfer::cuda
