#include "app/cli.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/run.h"
#include "core/error.h"
#include "core/json.h"
#include "core/lua_policy.h"

namespace twinfer {

namespace {

std::string usage() {
  std::string u =
      "twinfer: LLM-serving research lab (one engine; simulator, CPU reference, GPU)\n\n"
      "usage: twinfer COMMAND [options]\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    name.resize(12, ' ');
    u += "  " + name + c.summary + "\n";
  }
  u += "\n`twinfer COMMAND --help` lists a command's options with their defaults.\n";
  return u;
}

}  // namespace

int cli_main(int argc, char** argv) {
  register_lua_policies();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(usage().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  register_cpu_backend();
#ifdef TWINFER_HAVE_CUDA
  register_cuda_backend();
#endif
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    for (const auto& c : commands())
      if (c.name == cmd) return c.main(args);
    std::fprintf(stderr, "twinfer: unknown command '%s'\n\n%s", cmd.c_str(), usage().c_str());
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "twinfer %s: %s\n", cmd.c_str(), e.what());
    return e.exit_code();
  } catch (const boost::program_options::error& e) {
    std::fprintf(stderr, "twinfer %s: %s (see `twinfer %s --help`)\n", cmd.c_str(), e.what(),
                 cmd.c_str());
    return 2;
  } catch (const JsonError& e) {
    std::fprintf(stderr, "twinfer %s: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twinfer %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}

}  // namespace twinfer
