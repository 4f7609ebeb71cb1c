#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "app/run.h"

namespace po = boost::program_options;

namespace twinfer {

int cmd_run(const std::vector<std::string>& args) {
  RunConfig defaults;
  po::options_description d(
      "twinfer run [options]\n\nRuns a workload through the engine and writes config.json, "
      "summary.json, requests.csv, steps.csv, kv_events.csv and trace.json to --out.\n\nOptions");
  d.add_options()("help,h", "show this help")("out", po::value<std::string>()->value_name("DIR"),
                                               "output folder (nothing is written without it)")(
      "no-progress", "no progress bar")("no-kv-events", "do not record KV events (faster, smaller)")(
      "quiet", "print nothing but errors");
  add_run_options(d, defaults);
  po::variables_map vm;
  if (!parse_flags(args, d, d, vm)) return 0;
  RunConfig cfg;
  apply_run_flags(vm, cfg);
  if (vm.count("out")) cfg.out = vm["out"].as<std::string>();
  RunOptions opt;
  opt.progress = !vm.count("no-progress") && !vm.count("quiet");
  opt.quiet = vm.count("quiet") > 0;
  opt.kv_events = !vm.count("no-kv-events");
  RunResult r = run_config(cfg, opt);
  if (!opt.quiet) {
    print_summary_table(r.summary, stdout);
    if (!cfg.out.empty()) std::printf("\noutputs: %s\n", cfg.out.c_str());
  }
  return 0;
}

}  // namespace twinfer
