// The measuring half of `twinfer calibrate` (app/calibrate_cuda.cpp): drives a CudaExecutor with
// the synthetic steps of sim/calibrate.h. Declared in every build; defined only with CUDA.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/model_spec.h"
#include "sim/calibrate.h"

namespace twinfer {

struct CalibRunOptions {
  int warmup = 2;         // untimed executions of each step first
  int repeats = 5;        // timed executions; the median is kept
  bool op_profile = true;  // second pass with an op-profiled executor (per-op device times)
};

struct CalibRun {
  std::vector<CalibMeasurement> measurements;
  std::vector<std::string> skipped;  // "label: why" for points the device or limits cannot run
  std::string gpu_name;              // cudaGetDeviceProperties().name
  int64_t pool_tokens = 0;           // KV capacity of the timed executor
};

#ifdef TWINFER_HAVE_CUDA
// cfg: model, kv_cache_dtype, max_model_len, seed, block size and limits as the caller set them
// (cmd_calibrate: max_num_seqs 256, max_num_batched_tokens 8192). Throws ConfigError when a step
// fails on the device.
CalibRun measure_cuda(const RunConfig& cfg, const ModelSpec& model,
                      const std::vector<CalibPoint>& points, const CalibRunOptions& opt);
#endif

}  // namespace twinfer
