// Roofline cost model of one engine step (docs/cost-model.md): per op, time =
// max(FLOPs / effective FLOP/s, bytes / effective bandwidth), plus launch overheads (per kernel
// when eager, one graph launch per decode step with CUDA graphs) and the scheduler's CPU time.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/json.h"
#include "core/model_spec.h"
#include "sim/hardware.h"

namespace twinfer {

// Effective efficiencies and overheads. Defaults are nominal guesses; `twinfer calibrate`
// measures them and writes a profile that overrides these fields.
struct CostParams {
  double gemm_flops_eff = 0.70;    // fraction of peak FLOP/s large GEMMs reach
  double mem_bw_eff = 0.85;        // fraction of peak HBM bandwidth streaming kernels reach
  double attn_bw_eff = 0.75;       // decode attention (paged gathers)
  double attn_flops_eff = 0.45;    // prefill attention on tensor cores
  double kernel_launch_s = 4.0e-6;  // per kernel, eager
  double graph_launch_s = 2.0e-5;   // per CUDA-graph replay
  double step_cpu_s = 3.0e-5;       // scheduler + bookkeeping per step
  double per_seq_cpu_s = 1.0e-6;    // per scheduled sequence per step
  double allreduce_alpha_s = 8.0e-6;  // per all-reduce latency
  double sampling_s_per_seq = 2.0e-6;
  // Decode attention over an fp8 KV cache: fraction of peak HBM bandwidth its (halved) K/V reads
  // reach. Dequantising fp8 to bf16 in the kernel costs more than the bytes saved suggest: on the
  // H100 (twinfer_bench attention_decode/fast, B64 x ctx 4096) bf16 took 450 us and fp8 572 us
  // for half the bytes, so fp8 streams at 0.5 * 450 / 572 = 0.39 of bf16's rate; the default is
  // that ratio times attn_bw_eff's default. Used for all attention K/V bytes of fp8 runs.
  double attn_fp8_bw_eff = 0.295;
  // Weight streaming of GEMMs with at most gemv_max_rows rows (decode at batch 1-2), which run a
  // hand-written GEMV kernel instead of cuBLAS (kernels/ops.h, Gemm::gemv_max_rows).
  double gemv_bw_eff = 0.85;
  // Rows at which a cuBLAS GEMM reaches half of gemm_flops_eff: effective FLOP/s scale with
  // T / (T + gemm_half_rows), since GEMMs of a few hundred rows fill few tiles and waves (0: off).
  double gemm_half_rows = 0;
  // Decode attention at batches <= attn_small_max_batch, where the kernel splits each context
  // into 64-key partitions instead of 512 (kernels/ops.h, kDecodePartition) so a few sequences
  // still fill the SMs: many more partial results to write and reduce per byte of K/V read.
  double attn_small_bw_eff = 0.75;
  // Extra host time of an eager forward at a token count (GEMM rows) the process has not run
  // before: cuBLAS chooses and caches an algorithm per new GEMM shape, on the host, before it
  // launches. On the H100 runs a repeated prefill shape lands within 0.5 ms of a smooth fit while
  // a first one takes 1 ms more at the median and 3.4 ms more on average (RowHistory; 0: off).
  double new_rows_s = 0;
  // On top of new_rows_s, the first new token counts of a process cost much more, decaying with
  // how many it has already met: the k-th new count (k = 0, 1, ... after the warm-up ones) adds
  // new_rows_early_s * exp(-k / new_rows_early_n). The GEMM kernels a new shape picks are loaded
  // (and their first launch set up) on first use; after a few dozen shapes the set the engine
  // uses is resident and only the per-shape choice is left. On the H100 runs the first 10 new
  // counts cost ~9 ms more at the median, the 40th-50th ~1.8 ms, the 100th+ ~1 ms (0: off).
  double new_rows_early_s = 0;
  double new_rows_early_n = 32;  // new counts, not seconds (> 0)
  // On top of new_rows_s, a new token count in a band of kRowBand rows that no earlier forward
  // touched: cuBLAS picks its kernels by row range, and a kernel's first use loads it (0: off).
  double new_band_s = 0;
  // Decode attention's latency floor, per layer and per key of the longest partition: one CTA
  // walks its partition's keys (min(longest context, partition size)) with a few loads in
  // flight, so a batch whose bytes stream in 15 us can still wait 35 us for its slowest CTA. The
  // layer's time is the quadrature sum of the two, sqrt(stream^2 + latency^2): they overlap,
  // and of the smooth maxima (stream^q + latency^q)^(1/q), q in 1..10, q = 2 fitted the H100
  // runs' decode steps best at every batch (0: off).
  double attn_part_key_s = 0;
  // Prefill attention's latency floor, per layer and per key tile: a CTA of the prefill kernel
  // (kernels/attention_prefill.cu) owns 64 query rows and walks its keys in tiles of
  // attn_prefill_tile_keys one after another (load, q.k, softmax, p.v), so a small prefill,
  // whose few CTAs leave most SMs idle, cannot finish before its last query block has walked
  // ceil(context / 64) tiles. Combined with the FLOP time as sqrt(flops^2 + latency^2), like
  // attn_part_key_s. The context is the mean context_after of the step's prefill sequences
  // (a step shape records no longest prefill) (0: off).
  double attn_prefill_tile_s = 0;
  // The first replay of each captured CUDA graph (one per capture size) costs more than later
  // ones: the executor captures the graphs before serving but never launches them, and a
  // graph's first launch uploads its work to the device. Added to that step's graph_launch_s;
  // RowHistory::first_replay tracks the sizes replayed (0: off).
  double graph_first_s = 0;
  int kernels_per_layer = 9;  // eager launches per layer (norms, GEMMs, rope, attention, act)
  int gemv_max_rows = 2;      // largest T that takes the GEMV path (kernels/ops.h); 0: none
  int attn_small_max_batch = 8;  // largest decode batch with 64-key partitions; 0: none
  // Keys per decode attention partition above and at most attn_small_max_batch (kernels/
  // attention_decode.cu, kDecodePartition and kSmallPartition): bound attn_part_key_s's keys.
  int attn_part_keys = 512;
  int attn_small_part_keys = 64;
  int attn_prefill_tile_keys = 64;  // kKeys in kernels/attention_prefill.cu

  Json to_json() const;
  // Applies the fields a profile sets; unknown fields are errors naming `source`.
  void apply_json(const Json& j, const std::string& source);
};

// The tunable fields of CostParams, one place for the profile JSON (apply_json/to_json) and the
// calibration fit: name, member, and whether it is an efficiency in (0, 1] or a time >= 0.
struct CostParamField {
  const char* name;
  double CostParams::*ptr;
  bool is_efficiency;
};
inline constexpr CostParamField kCostParamFields[] = {
    {"gemm_flops_eff", &CostParams::gemm_flops_eff, true},
    {"mem_bw_eff", &CostParams::mem_bw_eff, true},
    {"attn_bw_eff", &CostParams::attn_bw_eff, true},
    {"attn_flops_eff", &CostParams::attn_flops_eff, true},
    {"kernel_launch_s", &CostParams::kernel_launch_s, false},
    {"graph_launch_s", &CostParams::graph_launch_s, false},
    {"step_cpu_s", &CostParams::step_cpu_s, false},
    {"per_seq_cpu_s", &CostParams::per_seq_cpu_s, false},
    {"allreduce_alpha_s", &CostParams::allreduce_alpha_s, false},
    {"sampling_s_per_seq", &CostParams::sampling_s_per_seq, false},
    {"attn_fp8_bw_eff", &CostParams::attn_fp8_bw_eff, true},
    {"gemv_bw_eff", &CostParams::gemv_bw_eff, true},
    {"attn_small_bw_eff", &CostParams::attn_small_bw_eff, true},
    // Rows, not seconds: a count >= 0 like the times (is_efficiency false).
    {"gemm_half_rows", &CostParams::gemm_half_rows, false},
    {"new_rows_s", &CostParams::new_rows_s, false},
    {"new_rows_early_s", &CostParams::new_rows_early_s, false},
    // New token counts, not seconds (is_efficiency false).
    {"new_rows_early_n", &CostParams::new_rows_early_n, false},
    {"new_band_s", &CostParams::new_band_s, false},
    {"attn_part_key_s", &CostParams::attn_part_key_s, false},
    {"attn_prefill_tile_s", &CostParams::attn_prefill_tile_s, false},
    {"graph_first_s", &CostParams::graph_first_s, false},
};

// The integer fields (counts and sizes the engine's kernels fix), with their allowed range.
struct CostParamInt {
  const char* name;
  int CostParams::*ptr;
  int lo, hi;
};
inline constexpr CostParamInt kCostParamInts[] = {
    {"kernels_per_layer", &CostParams::kernels_per_layer, 0, 1000},
    {"gemv_max_rows", &CostParams::gemv_max_rows, 0, 1000},
    {"attn_small_max_batch", &CostParams::attn_small_max_batch, 0, 1000},
    {"attn_part_keys", &CostParams::attn_part_keys, 1, 1 << 20},
    {"attn_small_part_keys", &CostParams::attn_small_part_keys, 1, 1 << 20},
    {"attn_prefill_tile_keys", &CostParams::attn_prefill_tile_keys, 1, 1 << 20},
};

// Which token counts (rows of every GEMM) the engine has already run an eager forward at, for
// new_rows_s. The CUDA executor runs some before serving (kernels/cuda_executor.cpp); those start
// out seen: one warm-up forward per CUDA-graph capture size (not in eager mode), the profiling
// step at max_tokens rows, and warm_gemms()'s grid of GEMM counts, in graph and eager mode alike
// (core/executor.h's gemm_warm_counts from kGemmWarmFrom). One byte per row count, grown on demand.
class RowHistory {
 public:
  RowHistory() = default;
  RowHistory(bool eager, int32_t max_num_seqs, int32_t max_tokens);
  // True when this is the first eager forward at `rows` rows; marks the count as seen.
  bool first_use(int32_t rows);
  // How many first uses there were since construction, the warm-up counts not included: the
  // ordinal the next new count gets (new_rows_early_s).
  int32_t fresh_count() const { return fresh_; }
  // Whether the last first_use() that returned true also met a new band of kRowBand rows.
  bool last_new_band() const { return last_band_; }
  static constexpr int32_t kRowBand = 32;
  // The first count CudaExecutor::warm_gemms() runs (gemv_max_rows + 1; smaller counts take the
  // GEMV); core/executor.h's gemm_warm_counts gives the grid from there.
  static constexpr int32_t kGemmWarmFrom = 3;
  // True when `shape` is a graph-replayed step (decode rows only, not eager) and the first
  // replay of the graph it runs: the smallest capture size >= its rows, padding included; false
  // above the largest size. Marks that graph replayed.
  bool first_replay(const StepShape& shape, bool eager);

 private:
  std::vector<uint8_t> seen_;
  int32_t fresh_ = 0;
  std::vector<int32_t> graph_sizes_;   // capture sizes, ascending (graph mode)
  std::vector<uint8_t> replayed_;      // per capture size
  std::vector<uint8_t> band_seen_;
  bool last_band_ = false;
};

struct OpCost {
  std::string op;
  double flops = 0, bytes = 0, seconds = 0;
};

struct StepCost {
  double total_s = 0;
  double compute_s = 0;   // sum of per-op roofline times
  double overhead_s = 0;  // launches + CPU
  std::vector<OpCost> ops;  // filled only when asked (breakdown = true)
};

class CostModel {
 public:
  CostModel(ModelSpec model, HardwareSpec hw, CostParams params, DType weight_dtype,
            DType kv_dtype, int tensor_parallel, bool enforce_eager);
  StepCost step_cost(const StepPlan& plan, bool breakdown = false) const;
  // The same cost from the plan's aggregate (StepShape::of(plan) gives an identical result):
  // re-costs a recorded step (step_shapes.csv) without its sequences.
  // new_rows: the step is the first eager forward at its token count (RowHistory), which adds
  // new_rows_s, plus new_rows_early_s decayed by its ordinal among the process's new counts.
  // first_replay: a graph step that is the first replay of its graph (graph_first_s).
  StepCost step_cost(const StepShape& shape, bool breakdown = false, bool new_rows = false,
                     int32_t new_rows_ordinal = 0, bool new_band = false,
                     bool first_replay = false) const;
  // The host time a first eager forward at a new token count adds (the new_rows_ordinal-th).
  double new_rows_cost(int32_t new_rows_ordinal) const;
  // Whether the step runs its kernels eagerly (any step with prefill, or every step when eager):
  // only those meet cuBLAS's per-shape algorithm choice; a graph replay does not.
  bool eager_forward(const StepShape& shape) const {
    return (eager_ || shape.prefill_tokens > 0) && shape.prefill_tokens + shape.decode_tokens > 0;
  }
  bool eager() const { return eager_; }
  const CostParams& params() const { return params_; }

 private:
  ModelSpec model_;
  HardwareSpec hw_;
  CostParams params_;
  DType wdtype_, kvdtype_;
  int tp_;
  bool eager_;
};

class SimExecutor : public Executor {
 public:
  explicit SimExecutor(CostModel model, RowHistory rows = {})
      : model_(std::move(model)), rows_(std::move(rows)) {}
  std::string backend() const override { return "sim"; }
  bool real_tokens() const override { return false; }
  StepResult execute(const StepPlan& plan) override;
  const CostModel& cost_model() const { return model_; }

 private:
  CostModel model_;
  RowHistory rows_;
};

}  // namespace twinfer
