// libFuzzer target for the tokenizer.json loader and the encoder/decoder.
// Input: tokenizer.json text, optionally followed by a NUL byte and a text to encode (without
// one, the JSON text itself is encoded). Parse and load errors must be JsonError/ConfigError;
// anything else (a crash, another exception, an id decode rejects) is a bug.
//
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. \
//     tests/fuzz/fuzz_tokenizer_json.cpp core/tokenizer.cpp core/tokenizer_load.cpp \
//     core/tokenizer_split.cpp core/unicode_tables.cpp core/json.cpp -o build/fuzz_tokenizer_json
//   ./build/fuzz_tokenizer_json tests/fuzz/corpus/tokenizer -max_len=4096
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "core/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view json_text = in.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? in : in.substr(nul + 1);
  twinfer::Json j;
  try {
    j = twinfer::Json::parse(json_text, "fuzz.json");
  } catch (const twinfer::JsonError&) {
    return 0;
  }
  try {
    auto tok = twinfer::Tokenizer::from_hf_json(j, "fuzz.json");
    for (bool special : {false, true}) {
      const auto ids = tok.encode(text, special);
      for (int32_t id : ids)
        if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
      try {
        (void)tok.decode(ids);
      } catch (const std::out_of_range&) {
        __builtin_trap();  // encode produced an id that decode rejects
      }
    }
    (void)tok.token_text(0);
  } catch (const twinfer::ConfigError&) {
  }
  return 0;
}
