// libFuzzer target: the safetensors parser must either accept a buffer or throw ConfigError,
// never crash, hang or read out of bounds. Accepted files are walked end to end.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/fuzz_safetensors.cpp core/safetensors.cpp core/json.cpp -o fuzz_safetensors
//   ./fuzz_safetensors tests/fuzz/corpus/safetensors
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = twinfer::SafetensorsFile::parse(std::span(data, size), "fuzz.safetensors");
    // Touch every byte the parser handed out: spans must lie inside the buffer.
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) {
      for (uint8_t b : t.data) sum += b;
      if (f.find(t.name) != &t) __builtin_trap();
    }
    volatile uint64_t sink = sum;
    (void)sink;
  } catch (const twinfer::ConfigError&) {
  }
  return 0;
}
