// The calibration fit (sim/calibrate.h) on measurements generated from known CostParams: it must
// find them again. No GPU: the measurements are the cost model's own predictions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "app/commands.h"
#include "core/error.h"
#include "sim/calibrate.h"
#include "sim/profile.h"

namespace twinfer {
namespace {

CalibSetup llama8b_h100() {
  CalibSetup s;
  s.model = *model_preset("llama-3-8b");
  s.hw = *hardware_preset("h100-sxm");
  return s;
}

// Values away from the defaults in both directions, so a fit that does not move fails.
CostParams truth() {
  CostParams p;
  p.gemm_flops_eff = 0.62;
  p.mem_bw_eff = 0.91;
  p.attn_bw_eff = 0.66;
  p.attn_flops_eff = 0.38;
  p.kernel_launch_s = 2.5e-6;
  p.graph_launch_s = 4.5e-5;
  p.sampling_s_per_seq = 3.5e-6;
  return p;
}

// What calibrate would record if the GPU behaved exactly like the cost model under `p`: the
// CUDA executor replays a graph for decode-only steps whose every row samples. `noise` scales
// point i by 1 + noise * (+1, -1, +0.5, ...), a deterministic pattern.
std::vector<CalibMeasurement> synthetic(const CalibSetup& s, const CostParams& p, bool ops,
                                        double noise = 0) {
  std::vector<CalibMeasurement> out;
  int i = 0;
  for (const CalibPoint& pt : calibration_points(false)) {
    CalibMeasurement m;
    m.point = pt;
    bool graph = true;
    for (const SeqShape& q : pt.seqs) graph = graph && !q.is_prefill && q.samples;
    m.eager = !graph;
    const CostModel cm(s.model, s.hw, p, s.weight_dtype, s.kv_dtype, 1, m.eager);
    const StepCost c = cm.step_cost(shape_plan(pt.seqs, s.block_size), true);
    const double f = 1 + noise * (i % 3 == 0 ? 1.0 : i % 3 == 1 ? -1.0 : 0.5);
    ++i;
    m.wall_s = c.total_s * f;
    if (ops)
      for (const OpCost& o : c.ops)
        if (o.op != "launch" && o.op != "cpu") m.op_s.emplace_back(o.op, o.seconds * (2 - f));
    out.push_back(std::move(m));
  }
  return out;
}

double param(const CostParams& p, const std::string& name) {
  const Json j = p.to_json();
  return j.get(name)->as_number();
}

}  // namespace

TEST_CASE("calibration points cover decode, prefill and mixed steps", "[calibrate]") {
  for (bool quick : {false, true}) {
    const auto pts = calibration_points(quick);
    int decode = 0, prefill = 0, mixed = 0;
    for (const CalibPoint& p : pts) {
      REQUIRE_FALSE(p.seqs.empty());
      decode += p.kind == "decode";
      prefill += p.kind == "prefill";
      mixed += p.kind == "mixed";
      CHECK(p.tokens() <= 8192);
      for (const SeqShape& q : p.seqs) CHECK(q.context_before + q.num_new_tokens <= 8192);
    }
    CHECK(decode >= (quick ? 6 : 18));
    CHECK(prefill >= 2);
    CHECK(mixed >= 1);
  }
}

TEST_CASE("fit recovers known CostParams from exact step and op times", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  const CostParams want = truth();
  const auto ms = synthetic(s, want, true);
  const FitResult r = fit_cost_params(s, ms, CostParams{});
  CHECK(r.objective_before > 1e-3);  // the defaults are visibly off
  CHECK(r.objective_after < 1e-6);
  for (const std::string& name : default_fit_params()) {
    INFO(name << ": fitted " << param(r.params, name) << ", true " << param(want, name));
    CHECK(param(r.params, name) == Approx(param(want, name)).epsilon(0.03));
  }
  // Parameters the fit was not asked to move stay where they started.
  CHECK(r.params.step_cpu_s == CostParams{}.step_cpu_s);
  CHECK(r.params.per_seq_cpu_s == CostParams{}.per_seq_cpu_s);
  for (const CalibMeasurement& m : ms)
    CHECK(predict_wall_s(s, r.params, m) == Approx(m.wall_s).epsilon(0.005));
}

TEST_CASE("fit from wall times alone pins the efficiencies", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  const CostParams want = truth();
  const FitResult r = fit_cost_params(s, synthetic(s, want, false), CostParams{});
  for (const char* name : {"gemm_flops_eff", "mem_bw_eff", "attn_bw_eff", "attn_flops_eff"}) {
    INFO(name << ": fitted " << param(r.params, name) << ", true " << param(want, name));
    CHECK(param(r.params, name) == Approx(param(want, name)).epsilon(0.03));
  }
}

TEST_CASE("fit with 1% measurement noise stays within a few percent", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  const CostParams want = truth();
  const auto ms = synthetic(s, want, true, 0.01);
  const FitResult r = fit_cost_params(s, ms, CostParams{});
  for (const char* name : {"gemm_flops_eff", "mem_bw_eff", "attn_bw_eff", "attn_flops_eff"}) {
    INFO(name << ": fitted " << param(r.params, name) << ", true " << param(want, name));
    CHECK(param(r.params, name) == Approx(param(want, name)).epsilon(0.04));
  }
  for (const CalibMeasurement& m : ms)
    CHECK(predict_wall_s(s, r.params, m) == Approx(m.wall_s).epsilon(0.03));
}

TEST_CASE("fit rejects unknown parameters and empty measurements", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  FitOptions o;
  o.params = {"mem_bw_eff", "warp_speed"};
  CHECK_THROWS_WITH(fit_cost_params(s, synthetic(s, truth(), false), CostParams{}, o),
                    Catch::Contains("warp_speed") && Catch::Contains("fittable"));
  CHECK_THROWS_AS(fit_cost_params(s, {}, CostParams{}), ConfigError);
}

TEST_CASE("measurements round-trip through JSON, run-length encoded", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  const auto ms = synthetic(s, truth(), true);
  for (const CalibMeasurement& m : ms) {
    const Json j = Json::parse(m.to_json().dump());
    const CalibMeasurement back = CalibMeasurement::from_json(j, "m");
    REQUIRE(back.point.seqs.size() == m.point.seqs.size());
    CHECK(back.point.label == m.point.label);
    CHECK(back.eager == m.eager);
    CHECK(back.wall_s == Approx(m.wall_s));
    CHECK(back.op_s.size() == m.op_s.size());
    CHECK(predict_wall_s(s, truth(), back) == Approx(predict_wall_s(s, truth(), m)));
  }
  CHECK(ms.front().to_json().get("seqs")->as_array().size() == 1);  // one entry for the batch
  CHECK_THROWS_WITH(CalibMeasurement::from_json(Json::parse(R"({"seqs": [], "wall_ms": 1})"), "p.json: m[3]"),
                    Catch::Contains("p.json: m[3]") && Catch::Contains("seqs"));
  CHECK_THROWS_WITH(CalibMeasurement::from_json(Json::parse(R"({"seqs": [{"count": 1, "num_new_tokens": 1, "context_before": 0, "is_prefill": false, "samples": true}], "speed": 1})"), "m"),
                    Catch::Contains("speed"));
  CHECK_THROWS_WITH(CalibMeasurement::from_json(Json::parse(R"({"seqs": [{"count": 1}]})"), "m"),
                    Catch::Contains("num_new_tokens"));
}

TEST_CASE("calibrate --refit fits a profile's measurements and writes a loadable profile", "[calibrate]") {
  const CalibSetup s = llama8b_h100();
  const CostParams want = truth();
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "twinfer_test_calibrate";
  fs::create_directories(dir);
  HwProfile p;
  p.twinfer_version = twinfer_version();
  p.model = ModelFingerprint::of(s.model);
  p.gpu = "h100-sxm";
  p.gpu_name = "NVIDIA H100 80GB HBM3";
  p.kv_cache_dtype = "bf16";
  p.created = utc_timestamp_now();
  p.measurements = Json::array();
  for (const CalibMeasurement& m : synthetic(s, want, true)) p.measurements.push_back(m.to_json());
  const std::string in = (dir / "measured.json").string(), out = (dir / "refit.json").string();
  p.save(in);
  // The stored profile loads (measurements are an accepted field) and keeps them.
  CHECK(HwProfile::load(in).measurements.as_array().size() == p.measurements.as_array().size());

  REQUIRE(cmd_calibrate({"--refit", in, "--out", out}) == 0);
  const HwProfile q = HwProfile::load(out);
  CHECK(q.gpu == "h100-sxm");
  CHECK(q.gpu_name == p.gpu_name);
  CHECK(q.params.mem_bw_eff == Approx(want.mem_bw_eff).epsilon(0.03));
  CHECK(q.params.gemm_flops_eff == Approx(want.gemm_flops_eff).epsilon(0.03));
  CHECK(q.measurements.as_array().size() == p.measurements.as_array().size());

  // Another model shape is refused, naming the field.
  CHECK_THROWS_WITH(cmd_calibrate({"--refit", in, "--out", out, "--model", "llama-3-70b"}),
                    Catch::Contains("num_layers"));
  Json bad = Json::parse_file(in);
  bad["measurements"] = Json::object();
  {
    std::FILE* f = std::fopen(in.c_str(), "w");
    REQUIRE(f);
    std::fputs(bad.dump().c_str(), f);
    std::fclose(f);
  }
  CHECK_THROWS_WITH(HwProfile::load(in), Catch::Contains("measurements"));
  fs::remove_all(dir);
}

}  // namespace twinfer
