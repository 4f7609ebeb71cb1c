// The `twinfer` command line: subcommands run, exp, bench, calibrate, compare, generate, ...
#pragma once

namespace twinfer {
int cli_main(int argc, char** argv);
}
