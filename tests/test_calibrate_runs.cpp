// Fitting the cost model to recorded runs (sim/calibrate_runs.h): simulated runs under known
// CostParams P must give P back from a perturbed start, and bad run folders name the file,
// line and column.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "app/run.h"
#include "core/error.h"
#include "sim/calibrate_report.h"
#include "sim/calibrate_runs.h"
#include "sim/profile.h"

namespace fs = std::filesystem;

namespace twinfer {
namespace {

// Host terms and efficiencies away from the defaults, so a fit that does not move fails.
CostParams truth() {
  CostParams p;
  p.gemm_flops_eff = 0.62;
  p.mem_bw_eff = 0.78;
  p.attn_bw_eff = 0.66;
  p.attn_flops_eff = 0.38;
  p.kernel_launch_s = 2.5e-6;
  p.graph_launch_s = 4.5e-5;
  p.step_cpu_s = 4.0e-4;
  p.per_seq_cpu_s = 3.0e-6;
  p.sampling_s_per_seq = 3.5e-6;
  p.attn_fp8_bw_eff = 0.31;
  p.gemv_bw_eff = 0.74;
  p.attn_small_bw_eff = 0.47;
  p.gemm_half_rows = 90;
  p.new_rows_s = 1.5e-3;
  p.attn_part_key_s = 6e-8;
  return p;
}

CalibSetup setup() {
  CalibSetup s;
  s.model = *model_preset("llama-3-8b");
  s.hw = *hardware_preset("h100-sxm");
  return s;
}

fs::path scratch(const char* name) {
  const fs::path d = fs::temp_directory_path() / ("twinfer_fid_" + std::string(name));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The op times an op-profiled calibration would record on a GPU that is the cost model under p.
// `kv`: the KV dtype the calibration ran with (`calibrate --kv-cache-dtype`).
std::vector<CalibMeasurement> op_anchor(const CalibSetup& s, const CostParams& p,
                                        DType kv = DType::bf16) {
  std::vector<CalibMeasurement> out;
  for (const CalibPoint& pt : calibration_points(true)) {
    CalibMeasurement m;
    m.point = pt;
    m.kv_dtype = kv;
    const CostModel cm(s.model, s.hw, p, s.weight_dtype, kv, 1, true);
    for (const OpCost& o : cm.step_cost(shape_plan(pt.seqs, s.block_size), true).ops)
      if (o.op != "launch" && o.op != "cpu") m.op_s.emplace_back(o.op, o.seconds);
    out.push_back(std::move(m));
  }
  return out;
}

// Simulated runs under `profile`: graphs at two batch sizes, eager chunked prefill, fp8 KV.
std::vector<std::string> simulate_runs(const fs::path& dir, const std::string& profile) {
  struct V {
    const char* name;
    int32_t seqs;
    bool eager, chunked;
    const char* kv;
  };
  std::vector<std::string> out;
  for (const V& v : {V{"b2", 2, false, false, "auto"}, V{"b4", 4, false, false, "auto"},
                     V{"b64", 64, false, false, "auto"},
                     V{"eager_chunk", 32, true, true, "auto"}, V{"fp8", 32, false, false, "fp8"}}) {
    RunConfig c;
    c.backend = "sim";
    c.model = "llama-3-8b";
    c.hardware = "h100-sxm";
    c.hw_profile = profile;
    c.engine.max_model_len = 4096;
    c.engine.max_num_seqs = v.seqs;
    c.engine.enforce_eager = v.eager;
    c.engine.enable_chunked_prefill = v.chunked;
    if (v.chunked) c.engine.max_num_batched_tokens = 256;
    c.engine.kv_cache_dtype = v.kv;
    c.workload.workload = "synthetic";
    c.workload.arrival = "poisson";
    c.workload.rate = 20;
    c.workload.num_requests = 60;
    c.workload.input_len = "lognormal:400:0.8";
    c.workload.output_len = "lognormal:48:0.5";
    c.out = (dir / v.name).string();
    RunOptions o;
    o.quiet = true;
    o.progress = false;
    run_config(c, o);
    out.push_back(c.out);
  }
  return out;
}

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes truth() as an H100 profile for the test model into dir/P.json; returns its path.
std::string save_truth_profile(const fs::path& dir) {
  HwProfile prof;
  prof.twinfer_version = twinfer_version();
  prof.model = ModelFingerprint::of(setup().model);
  prof.gpu = "h100-sxm";
  prof.kv_cache_dtype = "bf16";
  prof.created = utc_timestamp_now();
  prof.params = truth();
  const std::string path = (dir / "P.json").string();
  prof.save(path);
  return path;
}

}  // namespace

TEST_CASE("a step's shape re-costs it exactly", "[fidelity]") {
  const CalibSetup s = setup();
  StepPlan plan;
  plan.block_size = 16;
  for (int i = 0; i < 5; ++i) {
    ScheduledSeq q;
    q.num_new_tokens = 1;
    q.context_before = 100 * (i + 1);
    q.samples = true;
    plan.seqs.push_back(q);
  }
  ScheduledSeq chunk;
  chunk.num_new_tokens = 300;
  chunk.context_before = 512;
  chunk.is_prefill = true;
  plan.seqs.push_back(chunk);
  plan.swap_out = {{1, 2}, {3, 4}};
  plan.copies = {{5, 6}};
  for (bool eager : {false, true}) {
    const CostModel cm(s.model, s.hw, truth(), DType::bf16, DType::fp8_e4m3, 1, eager);
    CHECK(cm.step_cost(StepShape::of(plan)).total_s == cm.step_cost(plan).total_s);
  }
  const StepShape sh = StepShape::of(plan);
  CHECK(sh.decode_pairs == 101 + 201 + 301 + 401 + 501);
  CHECK(sh.prefill_pairs == 300LL * 512 + 300LL * 301 / 2);
  CHECK(sh.prefill_context == 812);
  CHECK(sh.sample_rows == 5);
  CHECK(sh.swapped_blocks == 2);
}

TEST_CASE("fitting simulated runs recovers the profile they ran under", "[fidelity]") {
  const fs::path dir = scratch("recover");
  const CalibSetup s = setup();
  const std::string path = save_truth_profile(dir);
  const std::vector<std::string> dirs = simulate_runs(dir, path);

  std::vector<RunSteps> runs;
  for (const std::string& d : dirs) runs.push_back(load_run_steps(d));
  REQUIRE(runs.size() == 5);
  CHECK(runs[4].kv_dtype == DType::fp8_e4m3);
  CHECK(runs[3].samples.front().eager);
  // The simulator starts each step at the previous one's end: no host gaps to fold in.
  for (const RunSteps& r : runs) CHECK(r.gap_median_s < 2e-6);
  const CalibSetup cs = common_setup(runs);

  std::vector<StepSample> all;
  for (const RunSteps& r : runs) all.insert(all.end(), r.samples.begin(), r.samples.end());
  FitOptions fo;
  fo.params = fittable_params();
  fo.huber_delta = 0.05;
  const CostParams start;  // the defaults: every field off by 10% to 13x
  const FitResult fit = fit_step_samples(cs, all, start, fo, op_anchor(s, truth()));
  CHECK(fit.objective_after < fit.objective_before / 100);
  for (const RunSteps& r : runs) {
    INFO(r.name);
    CHECK(run_step_error(cs, start, r).median_abs > 0.05);
    CHECK(run_step_error(cs, fit.params, r).median_abs < 0.005);
    CHECK(std::abs(run_step_error(cs, fit.params, r).total) < 0.005);
  }
  const CostParams want = truth();
  CHECK(fit.params.gemm_flops_eff == Approx(want.gemm_flops_eff).epsilon(0.03));
  CHECK(fit.params.mem_bw_eff == Approx(want.mem_bw_eff).epsilon(0.03));
  CHECK(fit.params.attn_bw_eff == Approx(want.attn_bw_eff).epsilon(0.05));
  // The structural terms: fp8 KV attention (the fp8 run), the GEMV path (batch 2), small-batch
  // decode attention (batches 2 and 4) and the row-dependent GEMM rate (prefills).
  CHECK(fit.params.attn_fp8_bw_eff == Approx(want.attn_fp8_bw_eff).epsilon(0.1));
  CHECK(fit.params.gemv_bw_eff == Approx(want.gemv_bw_eff).epsilon(0.05));
  CHECK(fit.params.attn_small_bw_eff == Approx(want.attn_small_bw_eff).epsilon(0.1));
  CHECK(fit.params.gemm_half_rows == Approx(want.gemm_half_rows).epsilon(0.15));
  // Decode attention's partition latency (the longest context of each decode step).
  CHECK(fit.params.attn_part_key_s == Approx(want.attn_part_key_s).epsilon(0.15));
  // The first eager forward at each token count (the runs' RowHistory, rebuilt from the shapes).
  // Only the eager run's first uses pay it, and only at counts off the executor's GEMM warm-up
  // grid (every count below 64, every 8th to its 256-token budget), a few dozen steps; its mixed
  // steps also carry decode attention's partition latency: with both free the fit lands within
  // 40%.
  CHECK(fit.params.new_rows_s == Approx(want.new_rows_s).epsilon(0.4));
  // Per-step constants: a graph step pays step_cpu_s + graph_launch_s, an eager one
  // step_cpu_s + kernels * kernel_launch_s; only those sums are pinned.
  const double kernels = want.kernels_per_layer * 32 + 4;
  CHECK(fit.params.step_cpu_s + fit.params.graph_launch_s ==
        Approx(want.step_cpu_s + want.graph_launch_s).epsilon(0.1));
  CHECK(fit.params.step_cpu_s + kernels * fit.params.kernel_launch_s ==
        Approx(want.step_cpu_s + kernels * want.kernel_launch_s).epsilon(0.1));
  // per_seq_cpu_s and sampling_s_per_seq (a few us per decode row, paid together) are left to
  // the run errors above: at these batch sizes they move a step by well under 1%.
}

TEST_CASE("an fp8 calibration's op times pin attn_fp8_bw_eff without an fp8 run", "[fidelity]") {
  // bf16 runs only (the fp8 one left out), fitted from a wrong fp8 efficiency: the bf16 op
  // anchor cannot move it; adding the op times of a `calibrate --kv-cache-dtype fp8` profile,
  // costed with fp8 KV, recovers it.
  const fs::path dir = scratch("fp8_anchor");
  const CalibSetup s = setup();
  const std::vector<std::string> dirs = simulate_runs(dir, save_truth_profile(dir));
  std::vector<RunSteps> runs;
  for (const std::string& d : dirs)
    if (load_run_steps(d).kv_dtype == DType::bf16) runs.push_back(load_run_steps(d));
  REQUIRE(runs.size() == 4);
  const CalibSetup cs = common_setup(runs);
  std::vector<StepSample> all;
  for (const RunSteps& r : runs) all.insert(all.end(), r.samples.begin(), r.samples.end());
  FitOptions fo;
  fo.params = {"attn_fp8_bw_eff", "attn_bw_eff"};
  CostParams start = truth();
  start.attn_fp8_bw_eff = 0.6;
  std::vector<CalibMeasurement> anchor = op_anchor(s, truth());
  const FitResult bf16_only = fit_step_samples(cs, all, start, fo, anchor);
  CHECK(bf16_only.params.attn_fp8_bw_eff == 0.6);
  for (CalibMeasurement& m : op_anchor(s, truth(), DType::fp8_e4m3)) anchor.push_back(std::move(m));
  const FitResult both = fit_step_samples(cs, all, start, fo, anchor);
  CHECK(both.params.attn_fp8_bw_eff == Approx(truth().attn_fp8_bw_eff).epsilon(0.01));
  CHECK(both.params.attn_bw_eff == Approx(truth().attn_bw_eff).epsilon(0.01));
}

TEST_CASE("the report groups steps by kind and finds a wrong term", "[fidelity]") {
  StepSample x;
  x.shape.decode_tokens = 2;
  x.shape.num_seqs = 2;
  x.eager = false;
  CHECK(step_group(x) == "decode graph b1-2 bf16");
  x.shape.prefill_tokens = 600;
  x.shape.prefill_context = 900;
  x.kv_dtype = DType::fp8_e4m3;
  CHECK(step_group(x) == "mixed eager b1-2 t513-2048 cached fp8");

  // Runs simulated under truth(), reported under a profile whose fp8 attention is 2x faster:
  // only the fp8 run's decode groups move, under-predicted.
  const fs::path dir = scratch("report");
  const std::string path = save_truth_profile(dir);
  std::vector<RunSteps> runs;
  for (const std::string& d : simulate_runs(dir, path)) runs.push_back(load_run_steps(d));
  const CalibSetup cs = common_setup(runs);
  CostParams wrong = truth();
  wrong.attn_fp8_bw_eff *= 2;
  for (const GroupError& g : group_errors(cs, wrong, runs)) {
    INFO(g.group);
    if (g.group.rfind("decode", 0) == 0 && g.group.find("fp8") != std::string::npos)
      CHECK(g.median < -0.003);  // csv noise is ~1e-5
    else if (g.group.find("fp8") == std::string::npos)
      CHECK(std::abs(g.median) < 1e-3);  // csv times keep 1 us
  }
  const std::string text = step_error_report(cs, wrong, runs, {true, true, false});
  CHECK(text.find("fp8 (held-out)") != std::string::npos);
}

TEST_CASE("runs recorded without decode_max_context get it rebuilt from requests.csv",
          "[fidelity]") {
  const fs::path dir = scratch("maxctx");
  const fs::path run = simulate_runs(dir, "")[1];  // batch 4: decodes pause for prefills
  const RunSteps now = load_run_steps(run.string());
  int64_t decodes = 0, above_mean = 0;
  for (const StepSample& x : now.samples) {
    if (x.shape.decode_tokens == 0) continue;
    ++decodes;
    CHECK(x.shape.decode_max_context * int64_t{x.shape.decode_tokens} >= x.shape.decode_context);
    above_mean += x.shape.decode_max_context * int64_t{x.shape.decode_tokens} > x.shape.decode_context;
  }
  REQUIRE(decodes > 100);
  CHECK(above_mean > decodes / 2);  // the longest context is not the mean

  // The same run as an older version wrote it: the column is rebuilt, step for step.
  std::string shapes = read(run / "step_shapes.csv");
  const std::string col = ",decode_max_context";
  REQUIRE(shapes.find(col) != std::string::npos);
  std::string old;
  for (size_t a = 0; a < shapes.size();) {
    size_t e = shapes.find('\n', a);
    if (e == std::string::npos) e = shapes.size();
    const std::string line = shapes.substr(a, e - a);
    old += line.substr(0, line.rfind(',')) + "\n";
    a = e + 1;
  }
  std::ofstream((run / "step_shapes.csv").string()) << old;
  const RunSteps rebuilt = load_run_steps(run.string());
  REQUIRE(rebuilt.samples.size() == now.samples.size());
  for (size_t i = 0; i < now.samples.size(); ++i) {
    INFO("sample " << i);
    CHECK(rebuilt.samples[i].shape.decode_max_context == now.samples[i].shape.decode_max_context);
  }
  // Without requests.csv nothing is rebuilt: the cost model falls back on the mean.
  fs::remove(run / "requests.csv");
  for (const StepSample& x : load_run_steps(run.string()).samples)
    CHECK(x.shape.decode_max_context == 0);
}

TEST_CASE("bad run folders name the file, column and line", "[fidelity]") {
  const fs::path dir = scratch("bad");
  const std::vector<std::string> dirs = simulate_runs(dir, "");
  const fs::path run = dirs[0];
  CHECK_NOTHROW(load_run_steps(run.string()));

  // An old run: no step_shapes.csv.
  const std::string shapes = read(run / "step_shapes.csv");
  fs::remove(run / "step_shapes.csv");
  CHECK_THROWS_WITH(load_run_steps(run.string()),
                    Catch::Contains("missing step_shapes.csv") && Catch::Contains(run.string()));

  // A column gone.
  std::string no_col = shapes;
  no_col.replace(no_col.find("decode_pairs,"), 13, "");
  std::ofstream((run / "step_shapes.csv").string()) << no_col;
  CHECK_THROWS_WITH(load_run_steps(run.string()),
                    Catch::Contains("step_shapes.csv") && Catch::Contains("'decode_pairs'"));

  // A bad value on line 3.
  std::string bad = shapes;
  const size_t l3 = bad.find('\n', bad.find('\n') + 1) + 1;
  const size_t comma = bad.find(',', l3);
  bad.replace(comma + 1, bad.find(',', comma + 1) - comma - 1, "x7");
  std::ofstream((run / "step_shapes.csv").string()) << bad;
  CHECK_THROWS_WITH(load_run_steps(run.string()),
                    Catch::Contains("step_shapes.csv:3") && Catch::Contains("'num_seqs'") &&
                        Catch::Contains("'x7'"));

  // steps.csv without its duration column.
  std::ofstream((run / "step_shapes.csv").string()) << shapes;
  std::string steps = read(run / "steps.csv");
  steps.replace(steps.find("duration_s"), 10, "dur");
  std::ofstream((run / "steps.csv").string()) << steps;
  CHECK_THROWS_WITH(load_run_steps(run.string()),
                    Catch::Contains("steps.csv") && Catch::Contains("'duration_s'"));
  CHECK_THROWS_WITH(load_run_steps((dir / "nope").string()), Catch::Contains("not a folder"));
}

}  // namespace twinfer
