#include "app/cli.h"

#include <cstdio>

namespace twinfer {
int cli_main(int, char**) {
  std::puts("twinfer: under construction");
  return 0;
}
}  // namespace twinfer
