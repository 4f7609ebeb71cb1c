// Byte-level BPE tokenizer (GPT-2, Llama-3, SmolLM2, Qwen2 families), loaded either from a
// Hugging Face tokenizer.json or from GGUF `tokenizer.ggml.*` metadata.
//
// Encoding: special (added) tokens are matched verbatim first; the text between them goes
// through the pre-tokenizer split (GPT-2 or Llama-3 regex, implemented by hand, optionally after
// a digit split), each piece is mapped byte-wise with GPT-2's bytes_to_unicode table and merged
// by BPE rank. Decoding concatenates each token's bytes, so decode(encode(x)) == x for any
// input, including malformed UTF-8. docs/tokenizer-sampling.md describes the details.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace twinfer {

class GgufFile;

// One stage of the pre-tokenizer split, applied to each piece left by the previous stage.
enum class SplitRule : uint8_t {
  gpt2,               // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  llama3,             // (?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  qwen2,              // as llama3 with \p{N} instead of \p{N}{1,3}
  digits_individual,  // HF Digits(individual_digits=true): every \p{N} alone
  digits_grouped,     // HF Digits(individual_digits=false): runs of \p{N} apart
};

class Tokenizer {
 public:
  // From a parsed tokenizer.json; `source` (the path) prefixes every error. Throws ConfigError
  // for anything that is not byte-level BPE with a supported pre-tokenizer.
  static Tokenizer from_hf_json(const Json& j, const std::string& source);
  static Tokenizer from_hf_file(const std::string& path);

  // From GGUF metadata: tokenizer.ggml.tokens (byte-level strings), .merges ("a b"),
  // .token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; control and
  // user-defined tokens are matched verbatim in text; empty means all normal) and .pre:
  // "llama-bpe"/"llama3" (Llama-3 regex, whole-word vocab hits skip merging as llama.cpp does),
  // "gpt2"/"gpt-2"/"default" (GPT-2 regex), "smollm" (individual digits, then GPT-2 regex),
  // "qwen2". bos/eos of -1 mean none; add_bos prepends bos when encode asks for specials.
  static Tokenizer from_vocab(std::vector<std::string> tokens, std::vector<std::string> merges,
                              std::vector<int32_t> token_types, std::string pre_type,
                              int32_t bos_id = -1, int32_t eos_id = -1, bool add_bos = false,
                              const std::string& source = "<gguf>");
  // from_vocab over a GGUF file's tokenizer.ggml.* keys (model must be "gpt2", i.e. byte-level
  // BPE; tokens required, merges/token_type/pre/bos/eos/add_bos optional, pre "default" when
  // absent). Errors name the file and key.
  static Tokenizer from_gguf(const GgufFile& g);

  // add_special: wrap the ids as the tokenizer's post-processor says (tokenizer.json's
  // TemplateProcessing / RobertaProcessing, or bos when add_bos).
  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // Raw bytes of the tokens in order; a prefix of a sequence may end inside a UTF-8 character.
  // Throws std::out_of_range for an id outside [0, vocab_size) or a hole in the vocab.
  std::string decode(std::span<const int32_t> ids) const;
  // The token as the vocabulary spells it (byte-level form, e.g. "Ġhello"); "" for a hole.
  std::string token_text(int32_t id) const;
  std::optional<int32_t> token_id(std::string_view text) const;
  bool is_special(int32_t id) const;

  int64_t vocab_size() const;
  int32_t bos_id() const;  // -1 when none
  int32_t eos_id() const;  // -1 when none
  bool add_bos() const;
  // tokenizer.json does not name bos/eos (tokenizer_config.json does); callers that read it
  // override the guesses here. Throws ConfigError for ids outside the vocab.
  void set_special_ids(int32_t bos, int32_t eos, bool add_bos);
  const std::vector<SplitRule>& split_rules() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  // Shared by copies: the tables are immutable after loading; the word cache inside is locked.
  std::shared_ptr<Impl> impl_;
};

// Splits `text` into pieces with one rule, appending [begin, end) byte offsets (relative to
// text) to `out`. Exposed for tests and for a GPU-side tokenizer to compare against.
void split_pieces(SplitRule rule, std::string_view text,
                  std::vector<std::pair<uint32_t, uint32_t>>& out);

}  // namespace twinfer
