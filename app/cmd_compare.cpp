// `twinfer compare HW_RUN_DIR`: the simulated twin of a run. Rebuilds the run's RunConfig from
// its config.json, replays its requests.csv (exact arrivals, prompt lengths and produced output
// lengths) through the simulator on the run's hardware with the same engine knobs and KV pool,
// and prints hardware vs simulation per metric with the relative error (docs/cli.md).
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>

#include "app/commands.h"
#include "app/run.h"
#include "core/error.h"
#include "core/workload.h"
#include "sim/profile.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace twinfer {

namespace {

struct MetricRow {
  const char* name;
  const char* unit;
  double hw, sim;
};

// (sim - hw) / hw; NaN where the hardware value is 0 and the simulation's is not (undefined).
double rel_error(double hw, double sim) {
  if (hw == sim) return 0.0;
  if (hw == 0) return std::nan("");
  return (sim - hw) / std::fabs(hw);
}

std::vector<MetricRow> metric_rows(const Summary& h, const Summary& s) {
  return {
      {"output throughput", "tok/s", h.output_tok_per_s, s.output_tok_per_s},
      {"request throughput", "req/s", h.req_per_s, s.req_per_s},
      {"TTFT p50", "ms", h.ttft_ms.p50, s.ttft_ms.p50},
      {"TTFT p95", "ms", h.ttft_ms.p95, s.ttft_ms.p95},
      {"TPOT p50", "ms", h.tpot_ms.p50, s.tpot_ms.p50},
      {"TPOT p95", "ms", h.tpot_ms.p95, s.tpot_ms.p95},
      {"e2e p50", "ms", h.e2e_ms.p50, s.e2e_ms.p50},
      {"e2e p95", "ms", h.e2e_ms.p95, s.e2e_ms.p95},
      {"preemptions", "", static_cast<double>(h.preemptions), static_cast<double>(s.preemptions)},
      {"peak KV blocks", "blocks", static_cast<double>(h.kv_blocks_peak),
       static_cast<double>(s.kv_blocks_peak)},
  };
}

Json load_json(const fs::path& p) {
  try {
    return Json::parse_file(p.string());
  } catch (const JsonError& e) {
    throw ConfigError(std::string(e.what()) + " (expected the file a twinfer run writes)", 2);
  }
}

const Json* path_get(const Json& j, std::initializer_list<const char*> keys) {
  const Json* v = &j;
  for (const char* k : keys) {
    if (!v->is_object() || !(v = v->get(k))) return nullptr;
  }
  return v;
}

// Prefix identities (hash_ids) are not in requests.csv; they come from the run's own workload,
// rebuilt from its config (same seed, same file). Returns false, and says why on stderr, when
// that workload is gone or no longer matches the recorded prompts.
bool adopt_prefix_identities(std::vector<RequestSpec>& replay, const RunConfig& run, bool quiet) {
  std::vector<RequestSpec> orig;
  try {
    orig = load_workload(run.workload, run.seed);
  } catch (const ConfigError& e) {
    if (!quiet)
      std::fprintf(stderr, "note: prefix identities unavailable (%s); replaying without shared "
                           "prefixes\n", e.what());
    return false;
  }
  bool any = false;
  for (const RequestSpec& o : orig) any |= !o.hash_ids.empty();
  if (!any) return false;
  bool same = orig.size() == replay.size();
  for (size_t i = 0; same && i < orig.size(); ++i) same = orig[i].prompt_len == replay[i].prompt_len;
  if (!same) {
    if (!quiet)
      std::fprintf(stderr, "note: the run's workload %s no longer matches its requests.csv; "
                           "replaying without shared prefixes\n", run.workload.workload.c_str());
    return false;
  }
  for (size_t i = 0; i < orig.size(); ++i) {
    replay[i].hash_ids = std::move(orig[i].hash_ids);
    replay[i].hash_block_tokens = orig[i].hash_block_tokens;
  }
  return true;
}

void print_table(const std::vector<MetricRow>& rows, const Summary& h, const Summary& s,
                 FILE* f) {
  std::fprintf(f, "\n%-26s %14s %14s %10s\n", "metric", "hardware", "simulation", "rel error");
  for (const MetricRow& r : rows) {
    std::string name = r.name;
    if (*r.unit) name += std::string(" (") + r.unit + ")";
    const double e = rel_error(r.hw, r.sim);
    char err[32];
    if (std::isnan(e)) std::snprintf(err, sizeof err, "n/a");
    else std::snprintf(err, sizeof err, "%+.1f%%", 100.0 * e);
    const int dec = std::strcmp(r.unit, "") == 0 || std::strcmp(r.unit, "blocks") == 0 ? 0 : 2;
    std::fprintf(f, "%-26s %14.*f %14.*f %10s\n", name.c_str(), dec, r.hw, dec, r.sim, err);
  }
  std::fprintf(f, "%-26s %7lld/%-6lld %7lld/%-6lld\n", "finished/failed",
               static_cast<long long>(h.finished), static_cast<long long>(h.failed),
               static_cast<long long>(s.finished), static_cast<long long>(s.failed));
}

Json compare_json(const std::vector<MetricRow>& rows, const std::string& hw_dir,
                  const std::string& sim_dir, const RunConfig& twin, const Summary& h,
                  const Summary& s) {
  Json j = Json::object();
  j["hardware_run"] = hw_dir;
  j["simulated_run"] = sim_dir;
  j["hardware_backend"] = h.backend;
  j["hardware"] = twin.hardware;
  j["hw_profile"] = twin.hw_profile;
  j["twinfer_version"] = twinfer_version();
  Json metrics = Json::array();
  for (const MetricRow& r : rows) {
    Json m = Json::object();
    m["metric"] = std::string(r.name);
    m["unit"] = std::string(r.unit);
    m["hardware"] = r.hw;
    m["simulation"] = r.sim;
    const double e = rel_error(r.hw, r.sim);
    m["rel_error"] = std::isnan(e) ? Json() : Json(e);
    metrics.push_back(std::move(m));
  }
  j["metrics"] = std::move(metrics);
  Json counts = Json::object();
  counts["hardware"] = Json::object();
  counts["hardware"]["finished"] = h.finished;
  counts["hardware"]["failed"] = h.failed;
  counts["simulation"] = Json::object();
  counts["simulation"]["finished"] = s.finished;
  counts["simulation"]["failed"] = s.failed;
  j["requests"] = std::move(counts);
  return j;
}

int compare_main(const std::vector<std::string>& args) {
  po::options_description d(
      "twinfer compare HW_RUN_DIR [options]\n\nReplays a run's exact arrivals and lengths "
      "(its requests.csv) in the simulator with the run's config, writes the simulated twin's "
      "run folder and prints hardware vs simulation per metric with the relative error.\n\n"
      "Options");
  d.add_options()("help,h", "show this help")(
      "hw-profile", po::value<std::string>()->value_name("FILE"),
      "calibration profile for the cost model (`twinfer calibrate`); refused if its model, gpu "
      "or version differs from the run")(
      "hardware", po::value<std::string>()->value_name("NAME"),
      "simulate this hardware preset instead of the run's (the KV pool is then re-planned)")(
      "out", po::value<std::string>()->value_name("DIR"),
      "folder for the simulated twin's outputs [default: HW_RUN_DIR/sim_twin]")(
      "json", "also write the comparison as DIR/compare.json")("quiet", "print only errors");
  po::options_description hidden;
  hidden.add_options()("run-dir", po::value<std::string>());
  po::options_description all;
  all.add(d).add(hidden);
  po::positional_options_description pos;
  pos.add("run-dir", 1);
  po::variables_map vm;
  if (!parse_flags(args, all, d, vm, &pos)) return 0;
  if (!vm.count("run-dir"))
    throw ConfigError("missing HW_RUN_DIR (the --out folder of a twinfer run)", 2);
  const bool quiet = vm.count("quiet") > 0;
  const fs::path dir = vm["run-dir"].as<std::string>();
  if (!fs::is_directory(dir))
    throw ConfigError(dir.string() + ": not a folder (expected the --out folder of a twinfer run)", 2);
  std::string missing;
  for (const char* name : {"config.json", "summary.json", "requests.csv"})
    if (!fs::is_regular_file(dir / name)) missing += std::string(missing.empty() ? "" : ", ") + name;
  if (!missing.empty())
    throw ConfigError(dir.string() + ": missing " + missing +
                          " (a twinfer run folder holds config.json, summary.json and requests.csv)", 2);

  const Json cfg_json = load_json(dir / "config.json");
  RunConfig run;
  run.apply_json(cfg_json, (dir / "config.json").string());
  const Summary hw = Summary::from_json(load_json(dir / "summary.json"), (dir / "summary.json").string());

  RunConfig twin = run;
  twin.backend = "sim";
  twin.out = vm.count("out") ? vm["out"].as<std::string>() : (dir / "sim_twin").string();
  if (vm.count("hw-profile")) twin.hw_profile = vm["hw-profile"].as<std::string>();
  const bool same_hw = !vm.count("hardware") || vm["hardware"].as<std::string>() == run.hardware;
  if (vm.count("hardware")) twin.hardware = vm["hardware"].as<std::string>();
  // The twin gets the KV pool the run actually had (a CPU run sizes its own; a GPU run measures
  // free memory), so preemptions and peak blocks compare like for like.
  if (same_hw && twin.engine.num_gpu_blocks_override == 0)
    if (const Json* nb = path_get(cfg_json, {"resolved", "memory", "num_gpu_blocks"}))
      twin.engine.num_gpu_blocks_override = static_cast<int32_t>(nb->as_int("num_gpu_blocks"));
  if (const Json* v = cfg_json.get("twinfer_version"); v && v->is_string() && !quiet &&
      version_major_minor(v->as_string()) != version_major_minor(twinfer_version()))
    std::fprintf(stderr, "note: the run was written by twinfer %s, this is %s\n",
                 v->as_string().c_str(), twinfer_version().c_str());
  if (!twin.hw_profile.empty()) {
    // Checked here as well as in the run, because only here is the device name known.
    const Json* gpu = path_get(cfg_json, {"resolved", "hardware", "gpu_name"});
    load_compatible_profile(twin.hw_profile,
                            {ModelFingerprint::of(resolve_model(twin.model)), twin.hardware,
                             gpu && gpu->is_string() ? gpu->as_string() : "", twinfer_version()});
  }

  // Exact arrivals: no redraw, no scaling, no truncation of the replay.
  std::string replay_path = (dir / "requests.csv").string();
  fs::create_directories(twin.out);
  if (twin.engine.enable_prefix_caching) {
    std::ifstream in(replay_path, std::ios::binary);
    std::vector<RequestSpec> replay = parse_requests_csv(in, replay_path);
    if (adopt_prefix_identities(replay, run, quiet)) {
      replay_path = (fs::path(twin.out) / "replay_requests.csv").string();
      std::ofstream out(replay_path, std::ios::binary | std::ios::trunc);
      write_requests_csv(out, replay);
      if (!out.flush()) throw ConfigError(replay_path + ": write failed", 2);
    }
  }
  twin.workload.workload = std::string(kRequestsWorkloadPrefix) + replay_path;
  twin.workload.arrival = "trace";
  twin.workload.time_scale = 1.0;
  twin.workload.max_requests = 0;

  RunOptions opt;
  opt.quiet = true;
  opt.progress = false;
  RunResult r = run_config(twin, opt);
  const std::vector<MetricRow> rows = metric_rows(hw, r.summary);
  if (!quiet) {
    std::printf("hardware run: %s (%s on %s)\nsimulated twin: %s%s%s\n", dir.string().c_str(),
                hw.backend.c_str(), run.hardware.c_str(), twin.out.c_str(),
                twin.hw_profile.empty() ? "" : ", profile ", twin.hw_profile.c_str());
    print_table(rows, hw, r.summary, stdout);
  }
  if (vm.count("json")) {
    const std::string path = (fs::path(twin.out) / "compare.json").string();
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << compare_json(rows, dir.string(), twin.out, twin, hw, r.summary).dump(2) << "\n";
    if (!f.flush()) throw ConfigError(path + ": write failed", 2);
    if (!quiet) std::printf("\ncomparison: %s\n", path.c_str());
  }
  return 0;
}

}  // namespace

int cmd_compare(const std::vector<std::string>& args) {
  // Every failure the user can fix is exit 2, including a malformed run folder.
  try {
    return compare_main(args);
  } catch (const ConfigError& e) {
    if (e.exit_code() == 2) throw;
    throw ConfigError(e.what(), 2);
  } catch (const JsonError& e) {
    throw ConfigError(e.what(), 2);
  }
}

}  // namespace twinfer
