// Subcommands of `twinfer`. Each lives in its own app/cmd_*.cpp; commands.cpp lists them.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/run_record.h"

namespace boost::program_options {
class options_description;
class positional_options_description;
class variables_map;
}  // namespace boost::program_options

namespace twinfer {

struct Command {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>&)> main;
};
const std::vector<Command>& commands();

int cmd_run(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_exp(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_calibrate(const std::vector<std::string>& args);
int cmd_presets(const std::vector<std::string>& args);
int cmd_generate(const std::vector<std::string>& args);
int cmd_make_model(const std::vector<std::string>& args);
int cmd_version(const std::vector<std::string>& args);

// Shared by commands that take run flags: one option per config field (vLLM's names), with the
// default shown; apply_run_flags layers --config FILE then the flags given on top of `c`.
void add_run_options(boost::program_options::options_description& d, const RunConfig& defaults);
void apply_run_flags(const boost::program_options::variables_map& vm, RunConfig& c);
// Parses a command's flags into vm. With --help prints `shown` (the visible options) and returns
// false before required options are checked; otherwise checks them (notify) and returns true.
bool parse_flags(const std::vector<std::string>& args,
                 const boost::program_options::options_description& all,
                 const boost::program_options::options_description& shown,
                 boost::program_options::variables_map& vm,
                 const boost::program_options::positional_options_description* positional = nullptr);
// The short table printed after a run.
void print_summary_table(const Summary& s, FILE* f);

}  // namespace twinfer
