// Where the cost model is wrong, step by step (`twinfer calibrate --from-runs ... --report`,
// docs/cost-model.md, "Per-step error report"): every recorded step of a hardware run is costed
// from its step_shapes.csv row and compared with its measured time, and the errors are grouped
// by step kind (decode / prefill / mixed, graph or eager launch, batch or chunk size, KV dtype,
// prefill over a cached prefix), so a fidelity miss can be traced to the kind of step causing it.
#pragma once
#include <string>
#include <vector>

#include "sim/calibrate.h"
#include "sim/calibrate_runs.h"

namespace twinfer {

// The group a step falls in, e.g. "decode graph b9-32 bf16" or "prefill eager t513-2048 cached".
// Decode batches bucket as 1-2 (the hand-written GEMV path), 3-8, 9-32, 33-128, 129+; prefill
// tokens as 1-128, 129-512, 513-2048, 2049+. "cached": some prefill row starts after a context
// already in the cache (prefix-cache hit or a later chunk).
std::string step_group(const StepSample& x);

struct GroupError {
  std::string group;
  int64_t steps = 0;
  int runs = 0;             // runs with at least one step in the group
  double time_share = 0;    // the group's share of the measured time of all runs given
  double median = 0;        // median of pred / meas - 1 (signed: > 0 over-predicts)
  double p10 = 0, p90 = 0;  // spread of the same
  double total = 0;         // Σ pred / Σ meas - 1 over the group's steps
};

// Per group over all `runs` (each run's steps as loaded: load them with max_steps = 0 to see
// every step), sorted by group name.
std::vector<GroupError> group_errors(const CalibSetup& s, const CostParams& p,
                                     const std::vector<RunSteps>& runs);

// Text report: the groups over all runs, then per run its steps by kind (decode / prefill /
// mixed) with the same columns. `fitted[i]` marks runs the profile was fitted on.
std::string step_error_report(const CalibSetup& s, const CostParams& p,
                              const std::vector<RunSteps>& runs, const std::vector<bool>& fitted);

}  // namespace twinfer
