#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "core/json.h"
#include "core/tokenizer.h"

using twinfer::ConfigError;
using twinfer::Json;
using twinfer::SplitRule;
using twinfer::Tokenizer;

namespace {

const std::string kDir = std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/tokenizers/";

// GPT-2's byte-to-character table, written out independently of the implementation.
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
    int n = 0;
    for (int k = 0; k < b; ++k)
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || k >= 174)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// A hand-made tokenizer.json: the 256 byte tokens (id = byte) plus the given merges, whose
// results get the next ids, and two special tokens.
Json tiny_json(const std::vector<std::pair<std::string, std::string>>& merges,
               const Json& pre_tokenizer) {
  Json j = Json::object();
  Json& model = j["model"];
  model["type"] = "BPE";
  Json& vocab = model["vocab"];
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  int64_t next = 256;
  Json& m = model["merges"];
  m = Json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.get(a + b)) vocab[a + b] = next++;
    m.push_back(a + " " + b);
  }
  Json added = Json::array();
  for (const char* s : {"<|bos|>", "<|eos|>"}) {
    Json t = Json::object();
    t["id"] = next++;
    t["content"] = s;
    t["special"] = true;
    added.push_back(t);
  }
  j["added_tokens"] = added;
  j["pre_tokenizer"] = pre_tokenizer;
  j["decoder"] = Json::parse(R"({"type": "ByteLevel"})");
  return j;
}

Json byte_level_pre() {
  return Json::parse(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})");
}

std::vector<std::string> pieces(SplitRule rule, std::string_view text) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  twinfer::split_pieces(rule, text, out);
  std::vector<std::string> s;
  for (auto [a, b] : out) s.emplace_back(text.substr(a, b - a));
  return s;
}

std::vector<int32_t> ids_of(const Json& arr) {
  std::vector<int32_t> v;
  for (const Json& x : arr.as_array()) v.push_back(static_cast<int32_t>(x.as_int()));
  return v;
}

// Checks every recorded reference encoding of an expected.json written by
// scripts/make_tokenizer_fixtures.py, through tokenizer.json and (where GGUF has a matching
// pre type) through from_vocab. Returns the number of encodings checked.
int check_reference(const std::string& expected_path) {
  const Json expected = Json::parse_file(expected_path);
  const std::string dir = expected_path.substr(0, expected_path.rfind('/') + 1);
  const Json base = Json::parse_file(dir + expected.get("vocab_file")->as_string());
  int checked = 0;
  for (const Json& c : expected.get("cases")->as_array()) {
    const std::string name = c.get("name")->as_string();
    Json j = base;
    j["pre_tokenizer"] = *c.get("pre_tokenizer");
    j["model"]["ignore_merges"] = *c.get("ignore_merges");
    if (const Json* pp = c.get("post_processor")) j["post_processor"] = *pp;
    const Tokenizer tok = Tokenizer::from_hf_json(j, name);

    // The same vocabulary as GGUF metadata would carry it.
    std::optional<Tokenizer> gguf;
    const std::string pre = name == "smollm" ? "smollm" : name == "gpt2" ? "gpt2"
                          : name == "llama3" ? "llama-bpe" : name == "qwen2" ? "qwen2" : "";
    if (!pre.empty()) {
      std::vector<std::string> tokens(static_cast<size_t>(tok.vocab_size()));
      std::vector<int32_t> types(tokens.size(), 1);
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = tok.token_text(static_cast<int32_t>(i));
        if (tok.is_special(static_cast<int32_t>(i))) types[i] = 3;
      }
      std::vector<std::string> merges;
      for (const Json& m : base.get("model")->get("merges")->as_array()) merges.push_back(m.as_string());
      const bool bos = c.get("post_processor") != nullptr;
      gguf = Tokenizer::from_vocab(tokens, merges, types, pre, bos ? 1 : -1, 2, bos);
    }
    for (const Json& e : c.get("encodings")->as_array()) {
      const std::string& text = e.get("text")->as_string();
      INFO(name << ": \"" << text << "\"");
      const auto ids = ids_of(*e.get("ids"));
      CHECK(tok.encode(text, false) == ids);
      CHECK(tok.encode(text, true) == ids_of(*e.get("ids_special")));
      CHECK((tok.decode(ids) == text) == e.get("roundtrip")->as_bool());
      if (gguf) {
        CHECK(gguf->encode(text, false) == ids);
        CHECK(gguf->encode(text, true) == ids_of(*e.get("ids_special")));
      }
      ++checked;
    }
  }
  return checked;
}

}  // namespace

TEST_CASE("gpt2 split follows the regex alternation", "[tokenizer]") {
  using V = std::vector<std::string>;
  CHECK(pieces(SplitRule::gpt2, "Hello  world's 123!!\n\n x") ==
        V{"Hello", " ", " world", "'s", " 123", "!!", "\n\n", " x"});
  CHECK(pieces(SplitRule::gpt2, "a\t\tb  ") == V{"a", "\t", "\t", "b", "  "});
  CHECK(pieces(SplitRule::gpt2, "I'M caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC") ==
        V{"I", "'", "M", " caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC"});
  CHECK(pieces(SplitRule::gpt2, "").empty());
}

TEST_CASE("llama3 split groups digits by three and keeps newlines with punctuation", "[tokenizer]") {
  using V = std::vector<std::string>;
  CHECK(pieces(SplitRule::llama3, "Hello  world's 12345!!\n\n x") ==
        V{"Hello", " ", " world", "'s", " ", "123", "45", "!!\n\n", " x"});
  CHECK(pieces(SplitRule::llama3, "I'M\t\tgo  \n \n y") == V{"I", "'M", "\t", "\tgo", "  \n \n", " y"});
  CHECK(pieces(SplitRule::qwen2, "x123") == V{"x", "1", "2", "3"});
  CHECK(pieces(SplitRule::digits_individual, "ab12c3") == V{"ab", "1", "2", "c", "3"});
  CHECK(pieces(SplitRule::digits_grouped, "ab12c3") == V{"ab", "12", "c", "3"});
}

TEST_CASE("bpe applies merges by rank, leftmost first", "[tokenizer]") {
  const Json j = tiny_json({{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "a"}, {byte_char(' '), "a"}},
                           byte_level_pre());
  const Tokenizer t = Tokenizer::from_hf_json(j, "tiny.json");
  CHECK(t.vocab_size() == 256 + 5 + 2);
  const int32_t ab = *t.token_id("ab"), abc = *t.token_id("abc"), aa = *t.token_id("aa");
  CHECK(t.encode("abc", false) == std::vector<int32_t>{abc});
  // "bc" outranks nothing here: "ab" (rank 0) wins over "bc" (rank 1) in "abcc" -> ab, c, c
  // then ab+c (rank 2).
  CHECK(t.encode("abcc", false) == std::vector<int32_t>{abc, 'c'});
  CHECK(t.encode("aaa", false) == std::vector<int32_t>{aa, 'a'});
  CHECK(t.encode("aaaa", false) == std::vector<int32_t>{aa, aa});
  CHECK(t.encode("xab", false) == std::vector<int32_t>{'x', ab});
  // The pre-tokenizer keeps " a" together, so the space merge applies.
  CHECK(t.encode("b a", false) == std::vector<int32_t>{'b', *t.token_id(byte_char(' ') + "a")});
  CHECK(t.token_text(*t.token_id(byte_char(' ') + "a")) == "\xC4\xA0" "a");
  // A word far longer than the cache bound still merges in O(n log n).
  const std::string long_word(20000, 'a');
  CHECK(t.encode(long_word, false) == std::vector<int32_t>(10000, aa));
}

TEST_CASE("tokenizer round-trips arbitrary bytes and awkward text", "[tokenizer]") {
  const Tokenizer t = Tokenizer::from_hf_json(tiny_json({{"a", "b"}}, byte_level_pre()), "tiny.json");
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);  // mostly malformed UTF-8
    CHECK(t.decode(t.encode(s, false)) == s);
  }
  const Tokenizer ref = Tokenizer::from_hf_file(kDir + "smollm2_mini.json");
  for (const char* s : {"emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "  a  b\t\tc\n\n\r\n",
                        "12345678 0.5", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "they'll DON'T",
                        "\xC3\xA9\xCC\x81"}) {
    CHECK(ref.decode(ref.encode(s, false)) == s);
    CHECK(t.decode(t.encode(s, false)) == s);
  }
}

TEST_CASE("encodings match Hugging Face tokenizers on the SmolLM2 vocabulary", "[tokenizer]") {
  // 6 pre-tokenizer variants x 36 texts, recorded by scripts/make_tokenizer_fixtures.py.
  CHECK(check_reference(kDir + "expected.json") == 6 * 36);
}

TEST_CASE("full-vocabulary reference (TWINFER_TOKENIZER_REFERENCE)", "[tokenizer][.]") {
  const char* path = std::getenv("TWINFER_TOKENIZER_REFERENCE");
  if (!path) return;
  CHECK(check_reference(path) > 0);
}

TEST_CASE("special tokens are matched verbatim with strip options", "[tokenizer]") {
  Json j = tiny_json({}, byte_level_pre());
  auto& added = j["added_tokens"].as_array_mut();
  added[1]["lstrip"] = true;
  added[1]["rstrip"] = true;
  j["post_processor"] = Json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [256], "tokens": ["<|bos|>"]}}})");
  Tokenizer t = Tokenizer::from_hf_json(j, "tiny.json");
  CHECK(t.bos_id() == 256);
  CHECK(t.add_bos());
  CHECK(t.eos_id() == -1);
  CHECK(t.encode("x<|bos|>y", false) == std::vector<int32_t>{'x', 256, 'y'});
  CHECK(t.encode("x  <|eos|> \ty", false) == std::vector<int32_t>{'x', 257, 'y'});
  CHECK(t.encode("x", true) == std::vector<int32_t>{256, 'x'});
  CHECK(t.decode(std::vector<int32_t>{256, 'x', 257}) == "<|bos|>x<|eos|>");
  CHECK(t.is_special(257));
  t.set_special_ids(256, 257, false);
  CHECK(t.eos_id() == 257);
  CHECK(t.encode("x", true) == std::vector<int32_t>{'x'});
  CHECK_THROWS_AS(t.set_special_ids(256, 9999, false), ConfigError);
  CHECK_THROWS_AS(t.decode(std::vector<int32_t>{9999}), std::out_of_range);
}

TEST_CASE("tokenizer loaders reject what they cannot run", "[tokenizer]") {
  auto err = [](const Json& j) {
    try {
      Tokenizer::from_hf_json(j, "bad/tokenizer.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Json j = tiny_json({{"a", "b"}}, Json::parse(R"({"type": "Split", "pattern": {"Regex": "\\w+"},
                                                  "behavior": "Isolated", "invert": false})"));
  auto msg = err(j);
  CHECK_THAT(msg, Catch::StartsWith("bad/tokenizer.json: pre_tokenizer.pattern.Regex \"\\w+\" is not supported"));
  CHECK_THAT(msg, Catch::Contains("Llama-3's"));
  j["pre_tokenizer"] = Json::parse(R"({"type": "Whitespace"})");
  CHECK_THAT(err(j), Catch::Contains("pre_tokenizer.type \"Whitespace\" is not supported"));
  j["pre_tokenizer"] = Json::parse(R"({"type": "Digits", "individual_digits": true})");
  CHECK_THAT(err(j), Catch::Contains("no ByteLevel stage"));
  j["pre_tokenizer"] = byte_level_pre();
  j["normalizer"] = Json::parse(R"({"type": "NFC"})");
  CHECK_THAT(err(j), Catch::Contains("normalizer \"NFC\" is not supported"));
  j["normalizer"] = nullptr;
  j["model"]["type"] = "WordPiece";
  CHECK_THAT(err(j), Catch::Contains("model.type \"WordPiece\" is not supported"));
  j["model"]["type"] = "BPE";
  j["model"]["merges"].push_back("q zz");
  CHECK_THAT(err(j), Catch::Contains("merge 1 \"q zz\": token \"zz\" is not in the vocabulary"));
  j["model"]["merges"] = Json::parse(R"([["a", "b"], "abc"])");
  CHECK_THAT(err(j), Catch::Contains("model.merges[1] \"abc\": expected two tokens"));
  j["model"]["merges"] = Json::parse(R"([["a", "b"]])");
  CHECK(err(j) == "no error");  // pairs are the newer merges format
  j["model"]["vocab"]["zz"] = "7";
  CHECK_THAT(err(j), Catch::Contains("model.vocab[\"zz\"]: expected"));

  CHECK_THROWS_WITH(Tokenizer::from_vocab({"a"}, {}, {}, "falcon", -1, -1, false, "m.gguf"),
                    Catch::StartsWith("m.gguf: tokenizer.ggml.pre \"falcon\" is not supported"));
  CHECK_THROWS_WITH(Tokenizer::from_vocab({"a"}, {}, {1, 1}, "gpt2", -1, -1, false, "m.gguf"),
                    Catch::Contains("token_type has 2 entries for 1 tokens"));
  CHECK_THROWS_WITH(Tokenizer::from_vocab({"a", "b"}, {"ab"}, {}, "gpt2", -1, -1, false, "m.gguf"),
                    Catch::Contains("merges[0] \"ab\": expected two tokens"));
  CHECK_THROWS_WITH(Tokenizer::from_vocab({"a"}, {}, {}, "gpt2", 3, -1, true, "m.gguf"),
                    Catch::Contains("bos_token_id 3 is outside the vocabulary"));
  CHECK_THROWS_AS(Tokenizer::from_hf_file(kDir + "missing.json"), ConfigError);
}

TEST_CASE("from_vocab drops bytes without a token and matches control tokens", "[tokenizer]") {
  // Only "a", "b", "ab" and a control token: other bytes vanish, as Hugging Face does, and the
  // letters around a vanished one merge ("aéb" is one pre-token).
  const Tokenizer t = Tokenizer::from_vocab({"a", "b", "ab", "<s>"}, {"a b"}, {1, 1, 1, 3},
                                            "gpt2", 3, -1, true);
  CHECK(t.encode("ab", true) == std::vector<int32_t>{3, 2});
  CHECK(t.encode("a\xC3\xA9" "b<s>", false) == std::vector<int32_t>{2, 3});
  CHECK(t.encode("a\x01" "b", false) == std::vector<int32_t>{0, 1});
  CHECK(t.decode(std::vector<int32_t>{2, 3}) == "ab<s>");
  CHECK(t.split_rules() == std::vector<SplitRule>{SplitRule::gpt2});
}

TEST_CASE("fuzz seeds are loadable tokenizers", "[tokenizer]") {
  const std::string dir = std::string(TWINFER_SOURCE_DIR) + "/tests/fuzz/corpus/tokenizer/";
  for (const char* name : {"llama3_template.json", "smollm_digits.json", "gpt2_roberta_text.bin"}) {
    INFO(name);
    std::ifstream in(dir + name, std::ios::binary);
    const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(!all.empty());
    const Tokenizer t = Tokenizer::from_hf_json(Json::parse(all.substr(0, all.find('\0'))), name);
    CHECK(!t.encode("ab abc 12 x y", true).empty());
  }
  const Tokenizer l3 = Tokenizer::from_hf_json(
      Json::parse_file(dir + "llama3_template.json"), "llama3_template.json");
  CHECK(l3.split_rules() == std::vector<SplitRule>{SplitRule::llama3});
  // ignore_merges: "abc" is a vocab word, taken whole; lstrip/rstrip swallow the spaces.
  CHECK(l3.encode("abc <|eot_id|> a", true) == std::vector<int32_t>{8, 7, 9, 0});
}
