// `twinfer exp FILE.lua [--backend sim|cpu|cuda] [--out DIR] [key=value ...]`
#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/lua_experiment.h"
#include "core/error.h"
#include "core/lua_policy.h"

namespace twinfer {
namespace {

const char* kExpHelp =
    "usage: twinfer exp FILE.lua [options] [key=value ...]\n\n"
    "Runs a Lua experiment script (docs/lua.md). key=value pairs reach the script as the table\n"
    "`args` (values are strings). Runs, tables and results.json go to the output folder.\n\n"
    "options:\n"
    "  --backend B            default backend of the script's runs: sim, cpu or cuda [sim]\n"
    "  --out DIR              output folder [out/<script name>]\n"
    "  --threads N            parallel simulated runs in a sweep [all hardware threads]\n"
    "  --max-instructions N   Lua instructions the script may execute [1e10]\n"
    "  --max-memory-mib N     memory of the script's Lua state [256]\n"
    "  --policy-max-instructions N  per call of a Lua policy [1e7]\n"
    "  --policy-max-memory-mib N    per Lua policy state [256]\n"
    "  --quiet                no per-run progress lines\n";

int64_t parse_count(const std::string& flag, const std::string& text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || !(v >= 1) || v > 9e18)
    throw ConfigError(flag + ": invalid value '" + text + "' (expected a positive number)", 2);
  return static_cast<int64_t>(v);
}

}  // namespace

int cmd_exp(const std::vector<std::string>& args) {
  ExperimentOptions opt;
  LuaLimits policy = LuaLimits::policy();
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kExpHelp, stdout);
      return 0;
    }
    if (a.rfind("--", 0) == 0) {
      std::string value;
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
      } else if (a != "--quiet") {
        if (i + 1 >= args.size()) throw ConfigError(a + ": expected a value", 2);
        value = args[++i];
      }
      if (a == "--backend") {
        if (value != "sim" && value != "cpu" && value != "cuda")
          throw ConfigError("--backend: invalid value '" + value + "' (expected one of sim, cpu, cuda)", 2);
        opt.backend = value;
      } else if (a == "--out") opt.out_dir = value;
      else if (a == "--threads") opt.threads = static_cast<int>(parse_count(a, value));
      else if (a == "--max-instructions") opt.limits.max_instructions = parse_count(a, value);
      else if (a == "--max-memory-mib") opt.limits.max_memory_bytes = static_cast<size_t>(parse_count(a, value)) << 20;
      else if (a == "--policy-max-instructions") policy.max_instructions = parse_count(a, value);
      else if (a == "--policy-max-memory-mib") policy.max_memory_bytes = static_cast<size_t>(parse_count(a, value)) << 20;
      else if (a == "--quiet") opt.quiet = true;
      else throw ConfigError("unknown option '" + a + "' (see `twinfer exp --help`)", 2);
      continue;
    }
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      if (eq == 0) throw ConfigError("argument '" + a + "': expected key=value", 2);
      opt.args.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    } else if (opt.script.empty()) {
      opt.script = a;
    } else {
      throw ConfigError("unexpected argument '" + a + "' (one script; parameters as key=value)", 2);
    }
  }
  if (opt.script.empty()) {
    std::fputs(kExpHelp, stderr);
    return 2;
  }
  register_lua_policies(policy);
  ExperimentResult r = run_experiment(opt);
  if (!opt.quiet && !r.files.empty()) {
    std::printf("outputs in %s:", r.out_dir.c_str());
    for (const std::string& f : r.files) std::printf(" %s", f.c_str());
    std::printf("\n");
  }
  return 0;
}

}  // namespace twinfer
