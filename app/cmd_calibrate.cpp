// `twinfer calibrate`: measures synthetic decode, prefill and mixed steps on the CUDA backend,
// fits the cost model's CostParams to them and writes a hardware profile (docs/cost-model.md,
// "Calibration"). `--refit` redoes the fit from a profile's stored measurements, without a GPU.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "app/calibrate_measure.h"
#include "app/commands.h"
#include "core/error.h"
#include "sim/calibrate.h"
#include "sim/calibrate_report.h"
#include "sim/calibrate_runs.h"
#include "sim/hardware.h"
#include "sim/profile.h"

namespace po = boost::program_options;

namespace twinfer {

namespace {

DType kv_dtype_of(const std::string& kvd) {
  if (kvd == "auto" || kvd == "bf16") return DType::bf16;
  if (kvd == "fp8") return DType::fp8_e4m3;
  throw ConfigError("--kv-cache-dtype " + kvd + ": calibrate supports bf16 and fp8", 2);
}

std::vector<CalibMeasurement> measurements_of(const HwProfile& p, const std::string& path) {
  if (!p.measurements.is_array() || p.measurements.as_array().empty())
    throw ConfigError(path + ": the profile holds no 'measurements' to refit (written by an older "
                             "twinfer calibrate?)", 2);
  std::vector<CalibMeasurement> out;
  const Json::Array& a = p.measurements.as_array();
  const DType kv = kv_dtype_of(p.kv_cache_dtype);
  for (size_t i = 0; i < a.size(); ++i) {
    out.push_back(CalibMeasurement::from_json(a[i], path + ": measurements[" + std::to_string(i) + "]"));
    out.back().kv_dtype = kv;
  }
  return out;
}

// --report FILE: every step of the fitted runs and of --report-runs (not fitted) under `p`,
// errors grouped by step kind (sim/calibrate_report.h).
void write_step_report(const po::variables_map& vm, const CalibSetup& setup, const CostParams& p) {
  if (!vm.count("report")) return;
  RunStepOptions ro;
  ro.gap_cap_s = vm["gap-cap-us"].as<double>() * 1e-6;
  ro.max_steps = 0;
  std::vector<RunSteps> runs;
  std::vector<bool> fitted;
  for (const char* key : {"from-runs", "report-runs"}) {
    if (!vm.count(key)) continue;
    for (const std::string& dir : vm[key].as<std::vector<std::string>>()) {
      runs.push_back(load_run_steps(dir, ro));
      fitted.push_back(std::string(key) == "from-runs");
    }
  }
  common_setup(runs);  // the extra runs must match the fitted ones
  const std::string path = vm["report"].as<std::string>();
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) throw ConfigError("--report " + path + ": cannot open for writing", 2);
  const std::string text = step_error_report(setup, p, runs, fitted);
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw ConfigError("--report " + path + ": write failed", 2);
  std::fprintf(stderr, "calibrate: wrote the per-step error report %s (%zu runs)\n", path.c_str(),
               runs.size());
}

// --from-runs: fit every CostParams field (host terms included) to the step times of measured
// runs; the profile header comes from --hw-profile BASE (also the fit's start) or the runs.
int calibrate_from_runs(const po::variables_map& vm, const std::string& out) {
  RunStepOptions ro;
  ro.gap_cap_s = vm["gap-cap-us"].as<double>() * 1e-6;
  ro.max_steps = vm["max-steps"].as<int64_t>();
  ro.time_weight = vm["time-weight"].as<double>();
  std::vector<RunSteps> runs;
  for (const std::string& dir : vm["from-runs"].as<std::vector<std::string>>())
    runs.push_back(load_run_steps(dir, ro));
  CalibSetup setup = common_setup(runs);

  HwProfile prof;
  CostParams start;
  std::vector<CalibMeasurement> anchor;
  if (vm.count("hw-profile")) {
    const std::string base = vm["hw-profile"].as<std::string>();
    prof = HwProfile::load(base);
    const std::vector<std::string> diff = prof.model.diff(ModelFingerprint::of(setup.model));
    if (!diff.empty())
      throw ConfigError(base + ": measured on another model shape than the runs: " + diff.front(), 2);
    if (prof.gpu != setup.hw.name)
      throw ConfigError(base + ": gpu '" + prof.gpu + "', the runs used '" + setup.hw.name + "'", 2);
    start = prof.params;
    if (prof.measurements.is_array() && !vm.count("no-op-anchor")) {
      anchor = measurements_of(prof, base);
      setup.kv_dtype = kv_dtype_of(prof.kv_cache_dtype);  // the anchor's; runs carry their own
    }
    // More op-profiled profiles of the same model and GPU (e.g. one measured with
    // --kv-cache-dtype fp8): their per-op device times join BASE's, each point costed with its
    // own profile's KV dtype. Their params are not used.
    if (vm.count("anchor") && !vm.count("no-op-anchor"))
      for (const std::string& path : vm["anchor"].as<std::vector<std::string>>()) {
        const HwProfile extra = HwProfile::load(path);
        const std::vector<std::string> d = extra.model.diff(ModelFingerprint::of(setup.model));
        if (!d.empty())
          throw ConfigError(path + ": measured on another model shape than the runs: " + d.front(), 2);
        if (extra.gpu != setup.hw.name)
          throw ConfigError(path + ": gpu '" + extra.gpu + "', the runs used '" + setup.hw.name + "'", 2);
        for (CalibMeasurement& m : measurements_of(extra, path)) anchor.push_back(std::move(m));
      }
  } else if (vm.count("anchor")) {
    throw ConfigError("calibrate --anchor needs --hw-profile BASE", 2);
  } else {
    prof.model = ModelFingerprint::of(setup.model);
    prof.gpu = setup.hw.name;
    prof.kv_cache_dtype = std::string(dtype_name(setup.kv_dtype));
  }
  prof.twinfer_version = twinfer_version();
  for (const RunSteps& r : runs) {
    const Json cfg = Json::parse_file(r.dir + "/config.json");
    const Json* res = cfg.get("resolved");
    const Json* hw = res && res->is_object() ? res->get("hardware") : nullptr;
    const Json* name = hw && hw->is_object() ? hw->get("gpu_name") : nullptr;
    if (!name || !name->is_string()) continue;
    if (!prof.gpu_name.empty() && prof.gpu_name != name->as_string())
      throw ConfigError(r.dir + ": ran on '" + name->as_string() + "', the profile is for '" +
                            prof.gpu_name + "'", 2);
    prof.gpu_name = name->as_string();
  }

  auto names = [&](const char* opt) {
    std::vector<std::string> out;
    const std::string list = vm[opt].as<std::string>();
    for (size_t a = 0; a <= list.size();) {
      const size_t b = std::min(list.find(',', a), list.size());
      if (b > a) out.push_back(list.substr(a, b - a));
      a = b + 1;
    }
    return out;
  };
  FitOptions fo;
  fo.params = vm.count("fit") ? names("fit") : fittable_params();
  if (vm.count("hold")) {
    const std::vector<std::string> fittable = fittable_params();
    for (const std::string& h : names("hold")) {
      if (std::find(fittable.begin(), fittable.end(), h) == fittable.end())
        throw ConfigError("calibrate --hold: '" + h + "' is not a fittable parameter", 2);
      std::erase(fo.params, h);
    }
    if (fo.params.empty()) throw ConfigError("calibrate --hold: every parameter is held", 2);
  }
  fo.huber_delta = vm["huber"].as<double>();
  std::vector<StepSample> all;
  for (const RunSteps& r : runs) all.insert(all.end(), r.samples.begin(), r.samples.end());
  if (vm.count("no-fit")) {
    write_step_report(vm, setup, start);
    return 0;
  }
  std::fprintf(stderr, "calibrate: fitting %zu params to %zu steps of %zu runs\n", fo.params.size(),
               all.size(), runs.size());
  if (!anchor.empty())
    std::fprintf(stderr, "calibrate: per-op device times of %zu calibration points anchor the "
                         "efficiencies\n", anchor.size());
  const FitResult fit = fit_step_samples(setup, all, start, fo, anchor);
  std::printf("%s", run_fit_table(setup, runs, start, fit.params).c_str());
  std::printf("fit: objective %.4g -> %.4g in %d sweeps\n", fit.objective_before,
              fit.objective_after, fit.sweeps);

  prof.created = utc_timestamp_now();
  prof.params = fit.params;
  prof.fitted_on = Json::array();
  for (const RunSteps& r : runs) {
    const RunStepError b = run_step_error(setup, start, r), a = run_step_error(setup, fit.params, r);
    Json j = Json::object();
    j["run"] = r.name;
    j["steps"] = static_cast<int64_t>(r.samples.size());
    j["gap_median_us"] = r.gap_median_s * 1e6;
    j["median_abs_step_error_before"] = b.median_abs;
    j["median_abs_step_error_after"] = a.median_abs;
    j["summed_time_error_before"] = b.total;
    j["summed_time_error_after"] = a.total;
    prof.fitted_on.push_back(std::move(j));
  }
  prof.save(out);
  std::printf("wrote %s (gpu %s, fitted on %zu runs)\n", out.c_str(), prof.gpu.c_str(), runs.size());
  write_step_report(vm, setup, fit.params);
  return 0;
}

}  // namespace

int cmd_calibrate(const std::vector<std::string>& args) {
  po::options_description d(
      "twinfer calibrate --backend cuda --model M --out PROFILE.json [options]\n\n"
      "Runs synthetic decode (batch 1..256 x context 128..4096), prefill (256..8192 tokens) and\n"
      "mixed steps on the GPU, fits the cost model's efficiencies and overheads to the measured\n"
      "step times (and per-op device times), prints measured vs predicted, and writes a profile\n"
      "for `--hw-profile`. --refit OLD.json redoes the fit from OLD's measurements (no GPU).\n"
      "--from-runs RUN_DIR... [--hw-profile BASE.json] fits every parameter, host-side terms\n"
      "included, to the measured steps of hardware runs (no GPU).\n\nOptions");
  d.add_options()("help,h", "show this help")(
      "backend", po::value<std::string>()->default_value("cuda"), "backend to measure (cuda only)")(
      "model", po::value<std::string>()->default_value("llama-3-8b"),
      "model preset (random weights on the device) or checkpoint path")(
      "hardware", po::value<std::string>()->default_value("h100-sxm"),
      "hardware preset the profile is for (its peaks are what the efficiencies are fractions of)")(
      "out", po::value<std::string>()->value_name("FILE"), "profile JSON to write (required)")(
      "kv-cache-dtype", po::value<std::string>()->default_value("bf16"), "bf16 | fp8")(
      "max-model-len", po::value<int32_t>()->default_value(8192), "longest context a step may reach")(
      "quick", "fewer points and repeats (under a minute on an H100)")(
      "repeats", po::value<int>(), "timed executions per step, median kept [default: 5, --quick 3]")(
      "no-op-profile", "skip the op-profiled pass (fit on wall times only)")(
      "seed", po::value<uint64_t>()->default_value(0), "weights and token ids")(
      "refit", po::value<std::string>()->value_name("PROFILE"),
      "fit again from PROFILE's measurements instead of measuring")(
      "from-runs", po::value<std::vector<std::string>>()->multitoken()->value_name("RUN_DIR..."),
      "fit to the step times of these run folders (steps.csv + step_shapes.csv), no GPU")(
      "hw-profile", po::value<std::string>()->value_name("BASE"),
      "--from-runs: profile whose header is kept and whose params start the fit")(
      "fit", po::value<std::string>()->value_name("P1,P2"),
      "--from-runs: params to fit [default: all but allreduce_alpha_s]")(
      "hold", po::value<std::string>()->value_name("P1,P2"),
      "--from-runs: params kept at BASE's values (taken out of the --fit list)")(
      "huber", po::value<double>()->default_value(0.05),
      "--from-runs: Huber threshold on the relative step error (0: plain least squares)")(
      "no-op-anchor", "--from-runs: ignore BASE's per-op device times (fit on step times only)")(
      "anchor", po::value<std::vector<std::string>>()->multitoken()->value_name("PROFILE..."),
      "--from-runs: more calibration profiles (same model and GPU, e.g. one measured with "
      "--kv-cache-dtype fp8) whose per-op device times anchor the fit beside BASE's")(
      "max-steps", po::value<int64_t>()->default_value(1000),
      "--from-runs: steps per run entering the fit, evenly strided (0: all)")(
      "time-weight", po::value<double>()->default_value(1.0),
      "--from-runs: 0..1, how much each step weighs by its share of the run's time (0: every "
      "step alike)")(
      "gap-cap-us", po::value<double>()->default_value(1000.0),
      "--from-runs: host gaps between steps up to this long count into the step before")(
      "report", po::value<std::string>()->value_name("FILE"),
      "--from-runs: write every step's error, grouped by step kind, under the fitted params")(
      "report-runs", po::value<std::vector<std::string>>()->multitoken()->value_name("RUN_DIR..."),
      "--from-runs --report: more runs to report on (held out: not fitted)")(
      "no-fit", "--from-runs: no fit and no profile written; --report under BASE's params");
  po::variables_map vm;
  if (!parse_flags(args, d, d, vm)) return 0;
  const bool report_only = vm.count("from-runs") && vm.count("no-fit");
  if (!vm.count("out") && !report_only) throw ConfigError("--out PROFILE.json is required", 2);
  const std::string out = vm.count("out") ? vm["out"].as<std::string>() : "";
  if (vm.count("from-runs")) return calibrate_from_runs(vm, out);
  const std::string backend = vm["backend"].as<std::string>();
  if (backend != "cuda")
    throw ConfigError("--backend " + backend + ": calibrate measures the cuda backend", 2);

  const ModelSpec model = resolve_model(vm["model"].as<std::string>());
  HwProfile prof;
  prof.twinfer_version = twinfer_version();
  prof.model = ModelFingerprint::of(model);
  prof.gpu = vm["hardware"].as<std::string>();
  prof.kv_cache_dtype = vm["kv-cache-dtype"].as<std::string>();
  if (prof.kv_cache_dtype == "auto") prof.kv_cache_dtype = "bf16";
  std::vector<CalibMeasurement> ms;

  if (vm.count("refit")) {
    const std::string path = vm["refit"].as<std::string>();
    const HwProfile old = HwProfile::load(path);
    const std::vector<std::string> diff = old.model.diff(prof.model);
    if (!diff.empty())
      throw ConfigError(path + ": measured on another model shape than --model " + model.name +
                            ": " + diff.front(), 2);
    if (vm["hardware"].defaulted()) prof.gpu = old.gpu;
    prof.gpu_name = old.gpu_name;
    prof.kv_cache_dtype = old.kv_cache_dtype;
    ms = measurements_of(old, path);
  } else {
#ifdef TWINFER_HAVE_CUDA
    const bool quick = vm.count("quick") > 0;
    RunConfig cfg;
    cfg.backend = "cuda";
    cfg.model = vm["model"].as<std::string>();
    cfg.hardware = prof.gpu;
    cfg.seed = vm["seed"].as<uint64_t>();
    cfg.engine.kv_cache_dtype = prof.kv_cache_dtype;
    cfg.engine.max_model_len = vm["max-model-len"].as<int32_t>();
    // The largest calibration step: 256 decodes, or 8192 prompt tokens in one step.
    cfg.engine.max_num_seqs = 256;
    cfg.engine.max_num_batched_tokens = 8192;
    cfg.engine.enable_chunked_prefill = true;
    CalibRunOptions ro;
    ro.repeats = vm.count("repeats") ? vm["repeats"].as<int>() : (quick ? 3 : 5);
    ro.warmup = quick ? 1 : 2;
    ro.op_profile = !vm.count("no-op-profile");
    std::fprintf(stderr, "calibrate: %s on the GPU, %s KV cache, %s\n", model.name.c_str(),
                 prof.kv_cache_dtype.c_str(), quick ? "quick" : "full grid");
    CalibRun run = measure_cuda(cfg, model, calibration_points(quick), ro);
    for (const std::string& s : run.skipped) std::fprintf(stderr, "  skipped %s\n", s.c_str());
    prof.gpu_name = run.gpu_name;
    ms = std::move(run.measurements);
#else
    throw ConfigError("this twinfer was built without the CUDA backend (no nvcc at build time): "
                      "calibrate needs a GPU build; `--refit PROFILE.json` redoes a fit from a "
                      "profile's measurements anywhere", 1);
#endif
  }

  CalibSetup setup;
  setup.model = model;
  setup.hw = resolve_hardware(prof.gpu);
  setup.weight_dtype = DType::bf16;  // the CUDA backend holds bf16 weights whatever it loaded
  setup.kv_dtype = kv_dtype_of(prof.kv_cache_dtype);
  const CostParams before;
  const FitResult fit = fit_cost_params(setup, ms, before);
  std::printf("%s", calibration_table(setup, ms, before, fit.params).c_str());
  std::printf("fit: objective %.4g -> %.4g in %d sweeps\n", fit.objective_before, fit.objective_after,
              fit.sweeps);

  prof.created = utc_timestamp_now();
  prof.params = fit.params;
  prof.measurements = Json::array();
  for (const CalibMeasurement& m : ms) prof.measurements.push_back(m.to_json());
  prof.save(out);
  std::printf("wrote %s (gpu %s%s%s)\n", out.c_str(), prof.gpu.c_str(),
              prof.gpu_name.empty() ? "" : ", ", prof.gpu_name.c_str());
  return 0;
}

}  // namespace twinfer
