// The simulated executor: the cost model predicts how long the step takes; no tokens are
// produced (the workload's output lengths decide when requests finish).
#include "sim/cost_model.h"

namespace twinfer {

StepResult SimExecutor::execute(const StepPlan& plan) {
  StepResult r;
  r.duration_s = model_.step_cost(plan).total_s;
  return r;
}

}  // namespace twinfer
