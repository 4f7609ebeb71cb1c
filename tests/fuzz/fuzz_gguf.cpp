// libFuzzer target: the GGUF parser must either accept a buffer or throw ConfigError, never
// crash, hang or allocate without bound. Accepted files have their metadata read, supported
// tensors dequantized and any tokenizer.ggml.* vocabulary loaded and used (fuzz_checks.h).
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DTWINFER_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_gguf
//   ./build-fuzz/fuzz_gguf -rss_limit_mb=1024 tests/fuzz/corpus/gguf
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (twinfer::fuzz::check_gguf(std::span(data, size))) __builtin_trap();
  return 0;
}
