// Replays the committed fuzz corpora (tests/fuzz/corpus/<name>/) through the same checks the
// libFuzzer targets run (tests/fuzz/fuzz_checks.h), in the ordinary build, so every input that
// once mattered to a fuzzer stays covered by CI. Every file also goes through every other
// parser: a GGUF seed is a fine malformed tokenizer.json and vice versa.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/fuzz/fuzz_checks.h"

namespace fs = std::filesystem;

namespace {

struct Seed {
  std::string name;
  std::string data;
};

std::vector<Seed> corpus(const std::string& name) {
  std::vector<Seed> out;
  const fs::path dir = fs::path(TWINFER_SOURCE_DIR) / "tests/fuzz/corpus" / name;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back({name + "/" + e.path().filename().string(), ss.str()});
  }
  return out;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Runs every check on `data`, whole and cut at a few lengths (truncation is the commonest
// corruption of a download).
void replay(const Seed& s) {
  INFO("seed " << s.name);
  const size_t n = s.data.size();
  for (size_t len : {n, n / 2, n > 8 ? n - 1 : 0, size_t{8}, size_t{0}}) {
    if (len > n) continue;
    const std::string cut = s.data.substr(0, len);
    INFO("first " << len << " bytes");
    const char* e = twinfer::fuzz::check_safetensors(bytes(cut));
    CHECK(e == nullptr);
    e = twinfer::fuzz::check_gguf(bytes(cut));
    CHECK(e == nullptr);
    e = twinfer::fuzz::check_tokenizer_json(cut);
    CHECK(e == nullptr);
    e = twinfer::fuzz::check_workload(cut);
    CHECK(e == nullptr);
  }
}

}  // namespace

TEST_CASE("fuzz corpora replay through every parser without breaking an invariant", "[fuzz]") {
  for (const char* name : {"safetensors", "gguf", "tokenizer", "workload"}) {
    const auto seeds = corpus(name);
    INFO("corpus " << name);
    REQUIRE(seeds.size() >= 2);
    for (const auto& s : seeds) replay(s);
  }
}

TEST_CASE("valid corpus seeds are accepted by their own parser", "[fuzz]") {
  // Guards the corpora themselves: a seed meant to reach deep code must still parse.
  for (const auto& s : corpus("gguf"))
    if (s.name == "gguf/tokenizer_smollm.gguf" || s.name == "gguf/q4_1.gguf") {
      INFO(s.name);
      CHECK_NOTHROW(twinfer::GgufFile::parse(bytes(s.data), s.name));
    }
  for (const auto& s : corpus("safetensors"))
    if (s.name == "safetensors/two_tensors.safetensors") {
      CHECK_NOTHROW(twinfer::SafetensorsFile::parse(bytes(s.data), s.name));
    }
  for (const auto& s : corpus("gguf"))
    if (s.name == "gguf/tokenizer_smollm.gguf") {
      const auto g = twinfer::GgufFile::parse(bytes(s.data), s.name);
      const auto tok = twinfer::Tokenizer::from_gguf(g);
      // "<|im_start|>" is a control token, "Ġab" a merge of "Ġ" and "ab".
      CHECK(tok.encode("<|im_start|> ab", false) == std::vector<int32_t>{1, 8});
      CHECK(tok.eos_id() == 2);
    }
}
