// Calibration of the cost model (docs/cost-model.md, "Calibration"): the synthetic steps
// `twinfer calibrate` measures, the raw measurements a profile keeps, and the fit of CostParams
// to them. Nothing here touches a GPU: the CUDA side (app/calibrate_cuda.cpp) only fills
// CalibMeasurements, so the fit can be redone from a profile's "measurements" and unit-tested on
// measurements generated from known parameters.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/executor.h"
#include "core/json.h"
#include "core/model_spec.h"
#include "sim/cost_model.h"
#include "sim/hardware.h"

namespace twinfer {

// One scheduled sequence of a synthetic step: the fields the cost model reads.
struct SeqShape {
  int32_t num_new_tokens = 1;
  int32_t context_before = 0;
  bool is_prefill = false;
  bool samples = true;
};

struct CalibPoint {
  std::string kind;   // "decode", "prefill", "mixed"
  std::string label;  // "decode b=32 ctx=1024"
  std::vector<SeqShape> seqs;  // decodes first, then prefill chunks (the engine's order)

  int64_t tokens() const;       // Σ num_new_tokens
  int64_t context_tokens() const;  // Σ context_after: KV slots the step needs
};

// The grid `twinfer calibrate` measures: decode batches {1..256} x contexts {128, 1024, 4096},
// two non-sampling decodes (eager on the CUDA executor), prefills of 256..8192 tokens (one and
// several sequences, a late chunk), and mixed steps (decodes + one prefill chunk).
// `quick` keeps a subset that still pins every fitted parameter.
std::vector<CalibPoint> calibration_points(bool quick);

// The StepPlan the cost model sees for `seqs` (no token ids or block tables).
StepPlan shape_plan(const std::vector<SeqShape>& seqs, int32_t block_size);

struct CalibMeasurement {
  CalibPoint point;
  bool eager = true;  // the step ran eagerly (no graph replay); the cost model's launch term
  double wall_s = 0;  // median wall time of execute(); 0 when not measured
  // Device seconds per step by cost-model op name (embedding, qkv_proj, attn_decode, ...), from
  // an op-profiled run; empty when none.
  std::vector<std::pair<std::string, double>> op_s;
  // The KV cache dtype the point ran with: its profile's kv_cache_dtype (not stored per point).
  // fit_step_samples costs each op anchor with its own, so an fp8 profile's attention times pin
  // attn_fp8_bw_eff beside a bf16 profile's.
  DType kv_dtype = DType::bf16;

  Json to_json() const;
  // Throws ConfigError naming `where` and the field.
  static CalibMeasurement from_json(const Json& j, const std::string& where);
};

// What the measurements were taken on: fixes the FLOP and byte counts.
struct CalibSetup {
  ModelSpec model;
  HardwareSpec hw;
  DType weight_dtype = DType::bf16;
  DType kv_dtype = DType::bf16;
  int32_t block_size = 16;
};

// CostParams fields the fit may move. step_cpu_s and per_seq_cpu_s model the scheduler, which
// calibration does not run (it drives the executor directly), so they are not fitted by
// default; the executor's own host time lands in the launch terms and sampling_s_per_seq.
std::vector<std::string> default_fit_params();
// Every name fit_cost_params accepts.
std::vector<std::string> fittable_params();

struct FitOptions {
  std::vector<std::string> params = default_fit_params();
  int max_sweeps = 400;
  double min_step = 1e-5;  // log-space step at which the search stops
  // 0: plain squared relative error. > 0: Huber loss on the relative error r (r^2 while
  // |r| <= delta, 2 delta |r| - delta^2 beyond), so a few steps a hiccup stretched (page
  // faults, a GC'd allocator, a slow first launch) do not pull the fit.
  double huber_delta = 0;
};

// One measured step in aggregate form (a hardware run's step_shapes.csv row, or a calibration
// point): the cost model's input, how it ran, and the time it took.
struct StepSample {
  StepShape shape;
  bool eager = true;             // no graph replay (the cost model's launch term)
  DType kv_dtype = DType::bf16;  // the run's KV cache dtype (fp8 runs halve the KV bytes)
  double wall_s = 0;             // measured: step duration plus the host gap before the next
  double weight = 1;             // share in the objective (runs are weighted equally)
  bool new_rows = false;         // first eager forward at its token count (new_rows_s)
  int32_t new_rows_ordinal = 0;  // when new_rows: how many new counts the run met before
  bool new_band = false;         // when new_rows: also the first count in its band (new_band_s)
  bool first_replay = false;     // the first replay of its CUDA graph (graph_first_s)
};

struct FitResult {
  CostParams params;
  double objective_before = 0, objective_after = 0;
  int sweeps = 0;
};

// Fits CostParams to measured steps: weighted mean of loss(pred/meas - 1) over `samples`, with
// the same coordinate search as fit_cost_params (which is this plus per-op terms). The setup's
// kv_dtype is ignored (each sample carries its own). Throws ConfigError as fit_cost_params does.
// `op_anchor`: calibration points whose per-op device times (op_ms, not their wall times) join
// the objective as in fit_cost_params. Run step times alone cannot tell a slower weight stream
// from a larger per-step constant (every decode reads all weights once); the op times can.
FitResult fit_step_samples(const CalibSetup& s, const std::vector<StepSample>& samples,
                           const CostParams& start, const FitOptions& opts = {},
                           const std::vector<CalibMeasurement>& op_anchor = {});
double step_samples_objective(const CalibSetup& s, const CostParams& p,
                              const std::vector<StepSample>& samples, double huber_delta = 0);
// One sample's cost under `cm` (a model built for its KV dtype and eager flag): the one place
// that passes a sample's first-use flags to the cost model.
inline StepCost sample_cost(const CostModel& cm, const StepSample& x, bool breakdown = false) {
  return cm.step_cost(x.shape, breakdown, x.new_rows, x.new_rows_ordinal, x.new_band,
                      x.first_replay);
}
// Predicted time of one sample under `p`.
double predict_sample_s(const CalibSetup& s, const CostParams& p, const StepSample& x);

// Predicted step time under `p` for a measurement (its eager flag picks the launch term).
double predict_wall_s(const CalibSetup& s, const CostParams& p, const CalibMeasurement& m);

// The objective the fit minimises: mean over wall-timed points of (pred/meas - 1)^2, plus, for
// op-profiled points, the time-share-weighted mean of the same per op.
double fit_objective(const CalibSetup& s, const CostParams& p,
                     const std::vector<CalibMeasurement>& ms);

// Coordinate search in log space over opts.params from `start` (efficiencies kept in (0, 1]).
// Throws ConfigError for an unknown parameter name or when no measurement has a time.
FitResult fit_cost_params(const CalibSetup& s, const std::vector<CalibMeasurement>& ms,
                          const CostParams& start, const FitOptions& opts = {});

// The report table: per point, measured wall ms, predicted ms before and after, error after;
// then the summed per-op device times against the fitted per-op predictions; then the params.
std::string calibration_table(const CalibSetup& s, const std::vector<CalibMeasurement>& ms,
                              const CostParams& before, const CostParams& after);

}  // namespace twinfer
