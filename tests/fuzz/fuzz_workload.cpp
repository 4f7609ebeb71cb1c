// libFuzzer target: arbitrary bytes through both trace parsers. A ConfigError is the expected
// answer to bad input; anything else (crash, sanitizer report, other exception) is a bug.
// Build: clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//          tests/fuzz/fuzz_workload.cpp core/workload.cpp core/json.cpp -o fuzz_workload
// Run:   ./fuzz_workload tests/fuzz/corpus/workload
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "core/error.h"
#include "core/workload.h"

namespace {

// Whatever a parser accepts must satisfy the RequestSpec invariants load_workload promises.
void check(const std::vector<twinfer::RequestSpec>& reqs) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = reqs[i];
    if (r.id != static_cast<twinfer::RequestId>(i) || r.prompt_len < 1 || r.output_len < 1 ||
        r.sampling.max_tokens != r.output_len || !(r.arrival_s >= 0) ||
        (i > 0 && reqs[i - 1].arrival_s > r.arrival_s))
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  {
    std::istringstream in(text);
    try {
      check(twinfer::parse_azure_csv(in, "fuzz.csv"));
    } catch (const twinfer::ConfigError&) {
    }
  }
  {
    std::istringstream in(text);
    try {
      check(twinfer::parse_mooncake_jsonl(in, "fuzz.jsonl"));
    } catch (const twinfer::ConfigError&) {
    }
  }
  return 0;
}
