// Tokenizer construction from a GGUF file's tokenizer.ggml.* metadata (llama.cpp's names). Kept
// apart from core/tokenizer_load.cpp so the tokenizer's own loaders need no GGUF reader.
#include "core/error.h"
#include "core/gguf.h"
#include "core/tokenizer.h"

namespace twinfer {

Tokenizer Tokenizer::from_gguf(const GgufFile& g) {
  const std::string& src = g.path();
  // "gpt2" is llama.cpp's name for byte-level BPE; "llama" (SentencePiece), "bert" (WordPiece)
  // and the others need tokenizers this one is not.
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw ConfigError(src + ": tokenizer.ggml.model \"" + model +
                      "\" is not supported (expected \"gpt2\", byte-level BPE)");
  std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  std::vector<std::string> merges;
  if (g.find("tokenizer.ggml.merges")) merges = g.get_string_array("tokenizer.ggml.merges");
  std::vector<int32_t> types;
  if (g.find("tokenizer.ggml.token_type")) {
    const std::vector<int64_t> raw = g.get_int_array("tokenizer.ggml.token_type");
    types.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] < INT32_MIN || raw[i] > INT32_MAX)
        throw ConfigError(src + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] = " +
                          std::to_string(raw[i]) + " (expected 0..6)");
      types.push_back(static_cast<int32_t>(raw[i]));
    }
  }
  auto id_key = [&](const char* key) -> int32_t {
    const int64_t v = g.get_int(key, -1);
    if (v < -1 || v > INT32_MAX)
      throw ConfigError(src + ": " + key + " = " + std::to_string(v) +
                        " (expected a token id or -1)");
    return static_cast<int32_t>(v);
  };
  const int32_t bos = id_key("tokenizer.ggml.bos_token_id");
  const int32_t eos = id_key("tokenizer.ggml.eos_token_id");
  // Converters write add_bos_token from the HF tokenizer's post-processor (SmolLM2: false);
  // absent means no bos, as for GPT-2 style tokenizers.
  const bool add_bos = g.get_bool("tokenizer.ggml.add_bos_token", false) && bos >= 0;
  return from_vocab(std::move(tokens), std::move(merges), std::move(types),
                    g.get_string("tokenizer.ggml.pre", "default"), bos, eos, add_bos, src);
}

}  // namespace twinfer
