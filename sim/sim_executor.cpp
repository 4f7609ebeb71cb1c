// The simulated executor: the cost model predicts how long the step takes; no tokens are
// produced (the workload's output lengths decide when requests finish).
#include "sim/cost_model.h"

namespace twinfer {

StepResult SimExecutor::execute(const StepPlan& plan) {
  StepResult r;
  const StepShape shape = StepShape::of(plan);
  const int32_t ordinal = rows_.fresh_count();
  const bool fresh = model_.eager_forward(shape) &&
                     rows_.first_use(shape.prefill_tokens + shape.decode_tokens);
  const bool first_graph = rows_.first_replay(shape, model_.eager());
  r.duration_s =
      model_.step_cost(shape, false, fresh, ordinal, fresh && rows_.last_new_band(), first_graph).total_s;
  return r;
}

}  // namespace twinfer
