// The CUDA executor as `--backend cuda` builds it, shared with `twinfer calibrate`. Only in
// builds with the CUDA backend (TWINFER_HAVE_CUDA).
#pragma once
#ifdef TWINFER_HAVE_CUDA
#include <memory>

#include "core/config.h"
#include "core/memory_plan.h"
#include "core/model_spec.h"
#include "kernels/cuda_executor.h"

namespace twinfer {

// Loads cfg.model onto the GPU, runs the profiling step, plans the KV pool from the device's
// memory into `plan` (vLLM's rule), allocates it and captures the decode graphs. profile_ops
// times every op with events (no graphs are captured: a profiled executor replays none).
// Throws ConfigError when no device is present or the configuration does not fit the backend.
std::unique_ptr<cuda::CudaExecutor> make_cuda_executor(const RunConfig& cfg, const ModelSpec& model,
                                                       MemoryPlan& plan, bool profile_ops);

}  // namespace twinfer
#endif  // TWINFER_HAVE_CUDA
