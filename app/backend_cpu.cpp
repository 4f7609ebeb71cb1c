// The CPU reference backend for `twinfer run --backend cpu`: real weights, real tokens.
#include <algorithm>

#include "app/run.h"
#include "core/cpu_executor.h"
#include "core/weights.h"

namespace twinfer {

void register_cpu_backend() {
  register_backend("cpu", [](const RunConfig& cfg, const ModelSpec&, MemoryPlan& plan) {
    ModelWeights w = load_model_weights(cfg.model);
    return std::unique_ptr<Executor>(std::make_unique<CpuExecutor>(
        std::move(w), plan.num_gpu_blocks, plan.num_cpu_blocks, plan.block_size, cfg.seed));
  });
}

}  // namespace twinfer
