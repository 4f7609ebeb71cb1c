// Lua experiment scripts (`twinfer exp FILE.lua`): a script describes runs as tables with the
// CLI's vocabulary (config_fields() names, dashes or underscores), runs and sweeps them on any
// backend, and writes Markdown/CSV/JSON into one output folder. docs/lua.md is the reference.
//
// The script sees a global `twinfer` table (run, sweep, config, table, csv, write, write_csv,
// write_json, log, backend, out_dir, args) and a global `args` (the command line's key=value
// pairs, values as strings). The Lua state is single-threaded; twinfer.sweep runs its
// simulations on a C++ thread pool, each run with its own engine and its own policy states.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/json.h"
#include "core/lua_sandbox.h"

namespace twinfer {

struct ExperimentOptions {
  std::string script;
  std::string backend = "sim";  // runs that name no backend use this one
  std::string out_dir;          // empty: out/<script stem>
  std::vector<std::pair<std::string, std::string>> args;  // key=value from the command line
  LuaLimits limits = LuaLimits::experiment();
  int threads = 0;  // parallel simulated runs; 0: all hardware threads
  bool quiet = false;
};

struct ExperimentResult {
  Json results = Json::array();  // every run, in order: summary fields + config + name
  std::vector<std::string> files;  // written into out_dir, in order (results.json last)
  std::string out_dir;
};

// Runs the script. A script error, a bad run config or a failed run throws ConfigError carrying
// the script's file, line and traceback. results.json (all runs) is written when any run ran.
ExperimentResult run_experiment(const ExperimentOptions& opt);

// The run-config half of the API, shared with tests. A flat object of flag names (either
// spelling; unknown keys and a knob given twice are errors naming the key) applied over `base`;
// string values are parsed as on the command line. "name" and "out" are not knobs and must be
// handled by the caller (they are rejected here). `where` prefixes messages.
RunConfig run_config_from_flat(const Json& flat, const RunConfig& base, const std::string& where);
// Every knob of c under its underscore name (max_num_seqs), the form run results carry.
Json run_config_to_flat(const RunConfig& c);

}  // namespace twinfer
