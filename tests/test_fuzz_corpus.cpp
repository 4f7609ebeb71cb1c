// Replays the committed fuzz corpora through the parsers in the ordinary build, so every input
// that once mattered to a fuzzer stays covered by CI: each must parse or fail with ConfigError.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json.h"
#include "core/workload.h"

namespace fs = std::filesystem;

namespace {
std::vector<std::string> corpus(const std::string& name) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(TWINFER_SOURCE_DIR) / "tests/fuzz/corpus" / name;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}
}  // namespace

TEST_CASE("workload corpus parses or fails cleanly", "[fuzz]") {
  auto files = corpus("workload");
  REQUIRE(!files.empty());
  for (const auto& data : files) {
    for (int form = 0; form < 2; ++form) {
      std::istringstream in(data);
      try {
        auto reqs = form ? twinfer::parse_mooncake_jsonl(in, "corpus") : twinfer::parse_azure_csv(in, "corpus");
        for (const auto& r : reqs) CHECK(r.prompt_len >= 1);
      } catch (const twinfer::ConfigError&) {
      }
    }
  }
}

TEST_CASE("json parser on corpus inputs parses or fails cleanly", "[fuzz]") {
  for (const auto& data : corpus("workload")) {
    try {
      twinfer::Json::parse(data);
    } catch (const twinfer::JsonError&) {
    }
  }
}
