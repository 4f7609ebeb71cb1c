// libFuzzer target: the GGUF parser must either accept a buffer or throw ConfigError, never
// crash, hang or allocate without bound. Accepted files have their metadata read through the
// typed accessors and their supported tensors dequantized.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/fuzz_gguf.cpp core/gguf.cpp core/safetensors.cpp core/json.cpp -o fuzz_gguf
//   ./fuzz_gguf -rss_limit_mb=1024 tests/fuzz/corpus/gguf
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "core/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = twinfer::GgufFile::parse(std::span(data, size), "fuzz.gguf");
    for (const auto& [key, v] : g.metadata()) {
      try {
        if (v.type == twinfer::GgufType::string) (void)g.get_string(key);
        else (void)g.get_float(key);
      } catch (const twinfer::ConfigError&) {
      }
    }
    for (const auto& t : g.tensors()) {
      int64_t be = 0, bb = 0;
      // Bounded work per input: skip huge (zero-byte-backed) tensors such as dims with a 0.
      if (twinfer::ggml_block_layout(t.type, be, bb) && t.numel() <= (int64_t{1} << 20))
        (void)g.dequantize(t);
    }
  } catch (const twinfer::ConfigError&) {
  }
  return 0;
}
