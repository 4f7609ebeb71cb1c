// `twinfer bench`: a run made for measuring. Offline mode sends every request at t = 0 (the
// throughput tables of the tuning guides); online mode keeps the workload's arrivals. Prints
// throughput, TTFT/TPOT percentiles and per-request decode speed, and writes the standard
// outputs with --out like any run.
#include <boost/program_options.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "app/commands.h"
#include "app/run.h"
#include "core/error.h"

namespace po = boost::program_options;

namespace twinfer {

int cmd_bench(const std::vector<std::string>& args) {
  RunConfig defaults;
  defaults.backend = "cuda";
  po::options_description d(
      "twinfer bench [options]\n\nMeasures a workload on a backend (default cuda). Offline: all "
      "requests at t = 0; online: the workload's arrivals (trace times, --rate).\n\n"
      "Example (batch-1 decode): twinfer bench --model llama-3-8b --workload synthetic "
      "--num-requests 1 --input-len fixed:128 --output-len fixed:256\n\nOptions");
  d.add_options()("help,h", "show this help")(
      "mode", po::value<std::string>()->default_value("offline")->value_name("offline|online"),
      "offline: every request arrives at t = 0; online: arrivals as the workload gives them")(
      "out", po::value<std::string>()->value_name("DIR"), "output folder (nothing is written without it)")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the summary JSON here")(
      "profile-ops", "cuda: time every op of every step with events (CUDA graphs off) and print the breakdown");
  add_run_options(d, defaults);
  po::variables_map vm;
  if (!parse_flags(args, d, d, vm)) return 0;
  RunConfig cfg = defaults;
  apply_run_flags(vm, cfg);
  const std::string mode = vm["mode"].as<std::string>();
  if (mode == "offline") cfg.workload.arrival = "offline";
  else if (mode != "online")
    throw ConfigError("--mode " + mode + ": expected offline or online", 2);
  if (vm.count("out")) cfg.out = vm["out"].as<std::string>();
  if (vm.count("profile-ops")) setenv("TWINFER_PROFILE_OPS", "1", 1);
  RunOptions opt;
  opt.kv_events = !cfg.out.empty();
  RunResult r = run_config(cfg, opt);
  const Summary& s = r.summary;
  print_summary_table(s, stdout);
  const double decode_tok_s = s.tpot_ms.mean > 0 ? 1000.0 / s.tpot_ms.mean : 0.0;
  std::printf("%-22s %.1f tok/s per request (1000 / mean TPOT)\n", "decode speed", decode_tok_s);
  std::printf("%-22s %s, %s\n", "bench", mode.c_str(), cfg.engine.enforce_eager ? "eager" : "cuda graphs");
  if (!r.backend_report.empty()) std::printf("\n%s", r.backend_report.c_str());
  if (vm.count("json")) {
    Json j = s.to_json();
    j["mode"] = mode;
    j["decode_tok_per_s_per_request"] = decode_tok_s;
    j["config"] = r.config;
    const std::string path = vm["json"].as<std::string>();
    std::ofstream f(path);
    f << j.dump(2) << "\n";
    if (!f) throw ConfigError(path + ": cannot write the summary JSON");
  }
  return s.failed > 0 ? 1 : 0;
}

}  // namespace twinfer
