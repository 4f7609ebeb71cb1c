// Calibration from measured runs (`twinfer calibrate --from-runs`, docs/cost-model.md,
// "Fitting to hardware runs"): loads a run folder's config.json, steps.csv and step_shapes.csv
// into StepSamples the fitter of sim/calibrate.h takes, and reports per-run step-time error.
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "sim/calibrate.h"

namespace twinfer {

// How a recorded step becomes a fit target.
struct RunStepOptions {
  // The host time between one step's end and the next one's start (engine commit, the driver's
  // event loop) belongs to the step before it: the simulator starts the next step at the end of
  // the previous one, so the cost model's step time must cover both. A gap longer than this is
  // the engine idling for an arrival and is not counted.
  double gap_cap_s = 1e-3;
  // At most this many steps per run enter the fit, evenly strided (0: all): the search
  // evaluates the objective thousands of times, and 1,000 steps already pin a run.
  int64_t max_steps = 1000;
  // How the run's steps share its unit weight: (1 - time_weight) / n each, plus time_weight
  // times the step's share of the run's summed measured time. 0 weighs every step alike, so a
  // run's few long prefills lose to its thousands of decode steps; 1 weighs each step by the
  // time it takes, which is what throughput and latencies (sums of step times) see.
  double time_weight = 1;
};

struct RunSteps {
  std::string dir;   // as given
  std::string name;  // the folder's last component
  RunConfig config;  // from config.json
  ModelSpec model;
  DType weight_dtype = DType::bf16, kv_dtype = DType::bf16;
  std::vector<StepSample> samples;  // one per step with a duration > 0; weights sum to 1
  // Inter-step host gaps counted into samples (seconds): count, median, mean.
  int64_t gaps = 0;
  double gap_median_s = 0, gap_mean_s = 0;
  // Share of the run's summed step time that the counted gaps add.
  double gap_share = 0;
};

// Throws ConfigError (exit 2) naming the folder, the missing file, or the file, line and column
// of a bad value. step_shapes.csv must have one row per steps.csv row, same step ids.
RunSteps load_run_steps(const std::string& dir, const RunStepOptions& opt = {});

// The CalibSetup the runs share (model shape, hardware preset, weight dtype, block size); throws
// ConfigError naming the first run that differs from the first one.
CalibSetup common_setup(const std::vector<RunSteps>& runs);

struct RunStepError {
  double median_abs = 0, mean_abs = 0;  // |pred / meas - 1| over the run's steps
  double total = 0;                     // Σ pred / Σ meas - 1 (what throughput sees)
};
RunStepError run_step_error(const CalibSetup& s, const CostParams& p, const RunSteps& run);

// Table: per run, steps, median gap, median |error| and summed-time error before and after.
std::string run_fit_table(const CalibSetup& s, const std::vector<RunSteps>& runs,
                          const CostParams& before, const CostParams& after);

}  // namespace twinfer
