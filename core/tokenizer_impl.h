// Internal tables of twinfer::Tokenizer, shared by the loaders (core/tokenizer_load.cpp) and the
// encoder (core/tokenizer.cpp). Not part of the public interface.
#pragma once
#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tokenizer.h"

namespace twinfer {

// A token matched verbatim in the text before pre-tokenization (HF added_tokens, GGUF control
// and user-defined tokens). lstrip/rstrip swallow whitespace beside the match; single_word only
// matches when no letter, digit or '_' touches it.
struct SpecialToken {
  std::string content;
  int32_t id = 0;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

struct Tokenizer::Impl {
  std::string source;
  std::vector<std::string> text;   // [vocab] as spelled in the vocabulary
  std::vector<std::string> bytes;  // [vocab] what decode emits
  std::vector<uint8_t> present;    // [vocab] 0 for ids no token has
  std::vector<uint8_t> special;    // [vocab]
  std::unordered_map<std::string, int32_t> by_text;
  std::unordered_map<std::string, int32_t> by_bytes;  // whole-word lookups (ignore_merges)
  std::array<int32_t, 256> byte_id{};  // id of the one-byte token of each byte; -1 if none
  int32_t unk = -1;                    // stands for bytes without a token; -1: drop them
  bool fuse_unk = false;               // consecutive unks become one

  struct Merge {
    int32_t rank;
    int32_t id;
  };
  std::unordered_map<uint64_t, Merge> merges;  // key: (uint64(left) << 32) | right

  std::vector<SplitRule> rules;
  bool add_prefix_space = false;
  bool ignore_merges = false;

  std::vector<SpecialToken> specials;  // longest content first
  std::array<uint8_t, 256> special_first{};  // 1 where some special token starts with the byte

  std::vector<int32_t> prefix_ids, suffix_ids;  // post-processor wrapping when add_special
  int32_t bos = -1, eos = -1;
  bool add_bos = false;

  // Bounded word cache: raw piece bytes -> ids. Cleared wholesale when full.
  static constexpr size_t kCacheMax = 1 << 15;
  static constexpr size_t kCacheMaxWord = 64;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // Fills bytes/by_text/by_bytes/byte_id from text/present, resolves `merge_pairs` (token text
  // pairs, in rank order) into `merges`, sorts `specials`. Throws ConfigError naming `source`.
  void finish(const std::vector<std::pair<std::string, std::string>>& merge_pairs);
  void set_wrapping();
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order, so every byte becomes one visible character.
char32_t byte_to_char(uint8_t b);
// Inverse; -1 for code points that no byte maps to.
int byte_of_char(char32_t cp);

}  // namespace twinfer
