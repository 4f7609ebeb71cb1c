// Tokenizer loaders: Hugging Face tokenizer.json and GGUF tokenizer.ggml.* metadata. Anything
// outside byte-level BPE with a known pre-tokenizer is a ConfigError naming the file and field.
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/tokenizer.h"
#include "core/tokenizer_impl.h"

namespace twinfer {

namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw ConfigError(source + ": " + msg);
}

bool opt_bool(const Json& obj, std::string_view key, bool dflt, const std::string& path) {
  const Json* v = obj.get(key);
  return (v && !v->is_null()) ? v->as_bool(path + "." + std::string(key)) : dflt;
}

const std::string& type_of(const Json& node, const std::string& path) {
  const Json* t = node.as_object(path).empty() ? nullptr : node.get("type");
  if (!t) throw JsonError(path + ".type: missing");
  return t->as_string(path + ".type");
}

struct PreState {
  bool byte_level = false;
};

void parse_pre(const Json& node, Tokenizer::Impl& t, PreState& st, const std::string& path) {
  const std::string& type = type_of(node, path);
  if (st.byte_level) fail(t.source, path + ": nothing may follow the ByteLevel pre-tokenizer");
  if (type == "Sequence") {
    const Json* list = node.get("pretokenizers");
    if (!list) fail(t.source, path + ".pretokenizers: missing");
    const auto& arr = list->as_array(path + ".pretokenizers");
    for (size_t i = 0; i < arr.size(); ++i)
      parse_pre(arr[i], t, st, path + ".pretokenizers[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    t.add_prefix_space = opt_bool(node, "add_prefix_space", true, path);
    if (opt_bool(node, "use_regex", true, path)) t.rules.push_back(SplitRule::gpt2);
    st.byte_level = true;
  } else if (type == "Digits") {
    t.rules.push_back(opt_bool(node, "individual_digits", false, path)
                          ? SplitRule::digits_individual : SplitRule::digits_grouped);
  } else if (type == "Split") {
    const Json* pat = node.get("pattern");
    const Json* re = pat ? pat->get("Regex") : nullptr;
    if (!re) fail(t.source, path + ".pattern: expected {\"Regex\": ...}");
    const std::string& p = re->as_string(path + ".pattern.Regex");
    const Json* beh = node.get("behavior");
    if (!beh || beh->as_string(path + ".behavior") != "Isolated")
      fail(t.source, path + ".behavior: only \"Isolated\" is supported");
    if (opt_bool(node, "invert", false, path)) fail(t.source, path + ".invert: must be false");
    if (p == kGpt2Pattern) t.rules.push_back(SplitRule::gpt2);
    else if (p == kLlama3Pattern) t.rules.push_back(SplitRule::llama3);
    else if (p == kQwen2Pattern) t.rules.push_back(SplitRule::qwen2);
    else
      fail(t.source, path + ".pattern.Regex \"" + p +
                         "\" is not supported; supported patterns are GPT-2's \"" +
                         std::string(kGpt2Pattern) + "\", Llama-3's \"" +
                         std::string(kLlama3Pattern) + "\" and Qwen2's \"" +
                         std::string(kQwen2Pattern) + "\"");
  } else {
    fail(t.source, path + ".type \"" + type +
                       "\" is not supported (expected ByteLevel, Split, Digits or Sequence)");
  }
}

void parse_post(const Json& node, const Tokenizer::Impl& t, std::vector<int32_t>& pre,
                std::vector<int32_t>& post, const std::string& path) {
  if (node.is_null()) return;
  const std::string& type = type_of(node, path);
  auto id_pair = [&](const char* key) {
    const Json* v = node.get(key);
    if (!v || v->as_array(path + "." + key).size() != 2)
      fail(t.source, path + "." + key + ": expected [token, id]");
    return static_cast<int32_t>(v->as_array()[1].as_int(path + "." + key + "[1]"));
  };
  if (type == "Sequence") {
    const Json* list = node.get("processors");
    if (!list) fail(t.source, path + ".processors: missing");
    const auto& arr = list->as_array(path + ".processors");
    for (size_t i = 0; i < arr.size(); ++i)
      parse_post(arr[i], t, pre, post, path + ".processors[" + std::to_string(i) + "]");
  } else if (type == "ByteLevel") {
    // Only adjusts offsets.
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    pre.push_back(id_pair("cls"));
    post.push_back(id_pair("sep"));
  } else if (type == "TemplateProcessing") {
    const Json* single = node.get("single");
    const Json* specials = node.get("special_tokens");
    if (!single) fail(t.source, path + ".single: missing");
    bool seen_a = false;
    for (const Json& piece : single->as_array(path + ".single")) {
      if (piece.get("Sequence")) {
        seen_a = true;
        continue;
      }
      const Json* sp = piece.get("SpecialToken");
      if (!sp) fail(t.source, path + ".single: expected Sequence or SpecialToken entries");
      const std::string& name = sp->get("id") ? sp->get("id")->as_string(path + ".single.id") : "";
      const Json* def = specials ? specials->get(name) : nullptr;
      if (!def || !def->get("ids"))
        fail(t.source, path + ".special_tokens: no ids for \"" + name + "\"");
      for (const Json& id : def->get("ids")->as_array(path + ".special_tokens.ids"))
        (seen_a ? post : pre).push_back(static_cast<int32_t>(id.as_int(path + ".special_tokens.ids")));
    }
  } else {
    fail(t.source, path + ".type \"" + type + "\" is not supported (expected TemplateProcessing, "
                   "RobertaProcessing, BertProcessing, ByteLevel or Sequence)");
  }
}

void place(Tokenizer::Impl& t, int64_t id, const std::string& text, const std::string& where) {
  if (id < 0 || id > 4 * 1024 * 1024)
    fail(t.source, where + ": id " + std::to_string(id) + " is outside [0, 4194304]");
  if (static_cast<size_t>(id) >= t.text.size()) {
    t.text.resize(id + 1);
    t.present.resize(id + 1, 0);
    t.special.resize(id + 1, 0);
  }
  if (t.present[id] && t.text[id] != text)
    fail(t.source, where + ": id " + std::to_string(id) + " is already \"" + t.text[id] + "\"");
  t.text[id] = text;
  t.present[id] = 1;
}

void check_ids(const Tokenizer::Impl& t, const std::vector<int32_t>& ids, const std::string& what) {
  for (int32_t id : ids)
    if (id < 0 || static_cast<size_t>(id) >= t.text.size() || !t.present[id])
      fail(t.source, what + ": id " + std::to_string(id) + " is not in the vocabulary");
}

Tokenizer::Impl* load_hf(const Json& j, Tokenizer::Impl& t) {
  const auto& root = j.as_object("tokenizer.json");
  (void)root;
  const Json* model = j.get("model");
  if (!model) fail(t.source, "model: missing");
  model->as_object("model");
  if (const Json* ty = model->get("type"); ty && ty->as_string("model.type") != "BPE")
    fail(t.source, "model.type \"" + ty->as_string() + "\" is not supported (expected BPE)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const Json* v = model->get(k); v && !v->is_null() && !v->as_string(std::string("model.") + k).empty())
      fail(t.source, std::string("model.") + k + " is not supported in byte-level BPE");
  if (const Json* v = model->get("dropout"); v && !v->is_null() && v->as_number("model.dropout") > 0)
    fail(t.source, "model.dropout must be null or 0 for inference");
  t.ignore_merges = opt_bool(*model, "ignore_merges", false, "model");

  const Json* vocab = model->get("vocab");
  if (!vocab) fail(t.source, "model.vocab: missing");
  for (const auto& [tok, idj] : vocab->as_object("model.vocab"))
    place(t, idj.as_int("model.vocab[\"" + tok + "\"]"), tok, "model.vocab[\"" + tok + "\"]");

  std::vector<std::pair<std::string, std::string>> merges;
  if (const Json* m = model->get("merges")) {
    const auto& arr = m->as_array("model.merges");
    merges.reserve(arr.size());
    for (size_t i = 0; i < arr.size(); ++i) {
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      if (arr[i].is_array()) {
        const auto& pr = arr[i].as_array();
        if (pr.size() != 2) fail(t.source, where + ": expected a pair");
        merges.emplace_back(pr[0].as_string(where), pr[1].as_string(where));
      } else {
        const std::string& s = arr[i].as_string(where);
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail(t.source, where + " \"" + s + "\": expected two tokens separated by one space");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      }
    }
  }

  if (const Json* added = j.get("added_tokens"); added && !added->is_null()) {
    const auto& arr = added->as_array("added_tokens");
    for (size_t i = 0; i < arr.size(); ++i) {
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      const Json& a = arr[i];
      a.as_object(where);
      const Json* id = a.get("id");
      const Json* content = a.get("content");
      if (!id || !content) fail(t.source, where + ": expected id and content");
      SpecialToken s;
      s.content = content->as_string(where + ".content");
      s.id = static_cast<int32_t>(id->as_int(where + ".id"));
      s.lstrip = opt_bool(a, "lstrip", false, where);
      s.rstrip = opt_bool(a, "rstrip", false, where);
      s.single_word = opt_bool(a, "single_word", false, where);
      place(t, s.id, s.content, where);
      t.special[s.id] = opt_bool(a, "special", false, where) ? 1 : 0;
      t.specials.push_back(std::move(s));
    }
  }

  if (const Json* n = j.get("normalizer"); n && !n->is_null()) {
    const bool empty_seq = type_of(*n, "normalizer") == "Sequence" && n->get("normalizers") &&
                           n->get("normalizers")->as_array("normalizer.normalizers").empty();
    if (!empty_seq)
      fail(t.source, "normalizer \"" + type_of(*n, "normalizer") +
                         "\" is not supported (byte-level BPE without a normalizer only)");
  }
  PreState st;
  if (const Json* p = j.get("pre_tokenizer"); p && !p->is_null()) parse_pre(*p, t, st, "pre_tokenizer");
  if (!st.byte_level)
    fail(t.source, "pre_tokenizer: no ByteLevel stage; only byte-level BPE is supported");
  if (const Json* d = j.get("decoder"); d && !d->is_null() && type_of(*d, "decoder") != "ByteLevel")
    fail(t.source, "decoder \"" + type_of(*d, "decoder") + "\" is not supported (expected ByteLevel)");
  if (const Json* pp = j.get("post_processor"))
    parse_post(*pp, t, t.prefix_ids, t.suffix_ids, "post_processor");

  t.finish(merges);
  if (const Json* u = model->get("unk_token"); u && !u->is_null()) {
    auto it = t.by_text.find(u->as_string("model.unk_token"));
    if (it == t.by_text.end())
      fail(t.source, "model.unk_token \"" + u->as_string() + "\" is not in the vocabulary");
    t.unk = it->second;
    t.fuse_unk = opt_bool(*model, "fuse_unk", false, "model");
  }
  check_ids(t, t.prefix_ids, "post_processor");
  check_ids(t, t.suffix_ids, "post_processor");
  // tokenizer.json does not name bos/eos: take the template's leading special token as bos and
  // the first conventional end-of-text token as eos; set_special_ids overrides both.
  if (!t.prefix_ids.empty()) {
    t.bos = t.prefix_ids[0];
    t.add_bos = true;
  }
  for (const char* name : {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>"}) {
    auto it = t.by_text.find(name);
    if (it != t.by_text.end() && t.special[it->second]) {
      t.eos = it->second;
      break;
    }
  }
  return &t;
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(const Json& j, const std::string& source) {
  auto t = std::make_shared<Impl>();
  t->source = source;
  try {
    load_hf(j, *t);
  } catch (const JsonError& e) {
    throw ConfigError(source + ": " + e.what());
  }
  return Tokenizer(std::move(t));
}

Tokenizer Tokenizer::from_hf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open tokenizer file");
  std::stringstream ss;
  ss << in.rdbuf();
  Json j;
  try {
    j = Json::parse(ss.str(), path);
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  return from_hf_json(j, path);
}

Tokenizer Tokenizer::from_vocab(std::vector<std::string> tokens, std::vector<std::string> merges,
                                std::vector<int32_t> token_types, std::string pre_type,
                                int32_t bos_id, int32_t eos_id, bool add_bos,
                                const std::string& source) {
  auto tp = std::make_shared<Impl>();
  Impl& t = *tp;
  t.source = source;
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    fail(source, "tokenizer.ggml.tokens: too many tokens");
  if (!token_types.empty() && token_types.size() != tokens.size())
    fail(source, "tokenizer.ggml.token_type has " + std::to_string(token_types.size()) +
                     " entries for " + std::to_string(tokens.size()) + " tokens");
  if (pre_type == "llama-bpe" || pre_type == "llama3") {
    t.rules = {SplitRule::llama3};
    t.ignore_merges = true;
  } else if (pre_type == "gpt2" || pre_type == "gpt-2" || pre_type == "default") {
    t.rules = {SplitRule::gpt2};
  } else if (pre_type == "smollm") {
    t.rules = {SplitRule::digits_individual, SplitRule::gpt2};
  } else if (pre_type == "qwen2") {
    t.rules = {SplitRule::qwen2};
  } else {
    fail(source, "tokenizer.ggml.pre \"" + pre_type +
                     "\" is not supported (expected llama-bpe, llama3, gpt2, gpt-2, default, "
                     "smollm or qwen2)");
  }
  const size_t n = tokens.size();
  t.text = std::move(tokens);
  t.present.assign(n, 1);
  t.special.assign(n, 0);
  for (size_t i = 0; i < token_types.size(); ++i) {
    const int32_t ty = token_types[i];
    if (ty < 0 || ty > 6)
      fail(source, "tokenizer.ggml.token_type[" + std::to_string(i) + "] = " +
                       std::to_string(ty) + " (expected 0..6)");
    if ((ty == 3 || ty == 4) && !t.text[i].empty())
      t.specials.push_back({t.text[i], static_cast<int32_t>(i), false, false, false});
    t.special[i] = ty == 3;
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const size_t sp = merges[i].find(' ', 1);
    if (sp == std::string::npos)
      fail(source, "tokenizer.ggml.merges[" + std::to_string(i) + "] \"" + merges[i] +
                       "\": expected two tokens separated by a space");
    pairs.emplace_back(merges[i].substr(0, sp), merges[i].substr(sp + 1));
  }
  t.finish(pairs);
  for (auto [name, v] : {std::pair{"bos", bos_id}, std::pair{"eos", eos_id}})
    if (v < -1 || v >= static_cast<int64_t>(n))
      fail(source, std::string("tokenizer.ggml.") + name + "_token_id " + std::to_string(v) +
                       " is outside the vocabulary [0, " + std::to_string(n) + ")");
  if (add_bos && bos_id < 0) fail(source, "tokenizer.ggml.add_bos_token is set without a bos id");
  t.bos = bos_id;
  t.eos = eos_id;
  t.add_bos = add_bos;
  t.set_wrapping();
  return Tokenizer(std::move(tp));
}

}  // namespace twinfer
