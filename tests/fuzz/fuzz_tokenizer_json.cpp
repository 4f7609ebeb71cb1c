// libFuzzer target for the tokenizer.json loader and the encoder/decoder.
// Input: tokenizer.json text, optionally followed by a NUL byte and a text to encode (without
// one, the JSON text itself is encoded). Parse and load errors must be JsonError/ConfigError;
// anything else (a crash, another exception, an id decode rejects) is a bug.
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DTWINFER_FUZZ=ON
//   cmake --build build-fuzz --target fuzz_tokenizer_json
//   ./build-fuzz/fuzz_tokenizer_json tests/fuzz/corpus/tokenizer -max_len=4096
#include "tests/fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (twinfer::fuzz::check_tokenizer_json(in)) __builtin_trap();
  return 0;
}
