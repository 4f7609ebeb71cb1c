// libFuzzer target: arbitrary bytes through both trace parsers. A ConfigError is the expected
// answer to bad input; anything else (crash, sanitizer report, other exception, an accepted
// request breaking RequestSpec's invariants) is a bug.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DTWINFER_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_workload
//   ./build-fuzz/fuzz_workload tests/fuzz/corpus/workload
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (twinfer::fuzz::check_workload(in)) __builtin_trap();
  return 0;
}
