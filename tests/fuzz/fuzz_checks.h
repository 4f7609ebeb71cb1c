// One input through one parser, as both the libFuzzer targets (tests/fuzz/fuzz_*.cpp) and the
// corpus replay test (tests/test_fuzz_corpus.cpp) run it. Bad input must end in ConfigError or
// JsonError, which these swallow; a broken invariant is returned as a message (the fuzzers trap
// on it, the test fails). Crashes and sanitizer reports are left to the harness.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/gguf.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/tokenizer.h"
#include "core/workload.h"

namespace twinfer::fuzz {

// Encodes `text` both ways; every id must be in the vocabulary and decodable.
inline const char* check_encode(const Tokenizer& tok, std::string_view text) {
  for (bool special : {false, true}) {
    const auto ids = tok.encode(text, special);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) return "encode produced an id outside the vocabulary";
    try {
      (void)tok.decode(ids);
    } catch (const std::out_of_range&) {
      return "decode rejected an id that encode produced";
    }
  }
  (void)tok.token_text(0);
  return nullptr;
}

inline const char* check_safetensors(std::span<const uint8_t> in) {
  try {
    auto f = SafetensorsFile::parse(in, "fuzz.safetensors");
    // Touch every byte handed out: spans must lie inside the buffer (ASan checks the reads).
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) {
      if (!t.data.empty() && (t.data.data() < in.data() || t.data.data() + t.data.size() > in.data() + in.size()))
        return "tensor data outside the input";
      for (uint8_t b : t.data) sum += b;
      if (f.find(t.name) != &t) return "find() does not return the listed tensor";
    }
    volatile uint64_t sink = sum;
    (void)sink;
  } catch (const ConfigError&) {
  }
  return nullptr;
}

// Accepted files have their metadata read through the typed accessors, their supported tensors
// dequantized, and their tokenizer.ggml.* metadata (if any) loaded and exercised.
inline const char* check_gguf(std::span<const uint8_t> in) {
  try {
    auto g = GgufFile::parse(in, "fuzz.gguf");
    for (const auto& [key, v] : g.metadata()) {
      try {
        if (v.type == GgufType::string) (void)g.get_string(key);
        else (void)g.get_float(key);
      } catch (const ConfigError&) {
      }
    }
    for (const auto& t : g.tensors()) {
      int64_t be = 0, bb = 0;
      // Bounded work per input: skip huge (zero-byte-backed) tensors such as dims with a 0.
      if (ggml_block_layout(t.type, be, bb) && t.numel() <= (int64_t{1} << 20)) (void)g.dequantize(t);
    }
    if (g.find("tokenizer.ggml.tokens")) {
      try {
        const Tokenizer tok = Tokenizer::from_gguf(g);
        if (const char* e = check_encode(tok, "Hello 123 <|im_start|>ab\n\xC3\xA9\xFF")) return e;
      } catch (const ConfigError&) {
      }
    }
  } catch (const ConfigError&) {
  }
  return nullptr;
}

// tokenizer.json text, optionally followed by a NUL byte and a text to encode (without one, the
// JSON text itself is encoded).
inline const char* check_tokenizer_json(std::string_view in) {
  const size_t nul = in.find('\0');
  const std::string_view json_text = in.substr(0, nul);
  const std::string_view text = nul == std::string_view::npos ? in : in.substr(nul + 1);
  Json j;
  try {
    j = Json::parse(json_text, "fuzz.json");
  } catch (const JsonError&) {
    return nullptr;
  }
  try {
    return check_encode(Tokenizer::from_hf_json(j, "fuzz.json"), text);
  } catch (const ConfigError&) {
  }
  return nullptr;
}

// Both trace parsers; whatever they accept must satisfy load_workload's RequestSpec invariants.
inline const char* check_workload(std::string_view in) {
  const std::string text(in);
  for (int form = 0; form < 2; ++form) {
    std::istringstream s(text);
    try {
      const auto reqs = form ? parse_mooncake_jsonl(s, "fuzz.jsonl") : parse_azure_csv(s, "fuzz.csv");
      for (size_t i = 0; i < reqs.size(); ++i) {
        const auto& r = reqs[i];
        if (r.id != static_cast<RequestId>(i) || r.prompt_len < 1 || r.output_len < 1 ||
            r.sampling.max_tokens != r.output_len || !(r.arrival_s >= 0) ||
            (i > 0 && reqs[i - 1].arrival_s > r.arrival_s))
          return "accepted request breaks a RequestSpec invariant";
      }
    } catch (const ConfigError&) {
    }
  }
  return nullptr;
}

}  // namespace twinfer::fuzz
