// libFuzzer target: the safetensors parser must either accept a buffer or throw ConfigError,
// never crash, hang or read out of bounds. Accepted files are walked end to end.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DTWINFER_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_safetensors
//   ./build-fuzz/fuzz_safetensors tests/fuzz/corpus/safetensors
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (twinfer::fuzz::check_safetensors(std::span(data, size))) __builtin_trap();
  return 0;
}
