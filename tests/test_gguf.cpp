// GGUF reading against files written by the gguf Python package (llama.cpp's own writer and
// quantizers, see scripts/make_reference_logits.py), and the reader's error handling.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/cpu_executor.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/json.h"
#include "core/weights.h"

using namespace twinfer;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

std::string fixture(const std::string& name) {
  return std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/" + name;
}

std::vector<float> ref_last_logits(const std::string& name) {
  Json j = Json::parse_file(fixture(name) + "/reference.json");
  std::vector<float> out;
  for (const Json& v : j.get("prefill_logits")->as_array().back().as_array())
    out.push_back(static_cast<float>(v.as_number()));
  return out;
}

std::vector<int32_t> ref_prompt(const std::string& name) {
  Json j = Json::parse_file(fixture(name) + "/reference.json");
  std::vector<int32_t> out;
  for (const Json& v : j.get("prompt")->as_array()) out.push_back(static_cast<int32_t>(v.as_int()));
  return out;
}

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<float> last_logits(const ModelWeights& w, std::span<const int32_t> prompt) {
  std::vector<float> all = forward_logits(w, prompt);
  return {all.end() - w.spec.vocab_size, all.end()};
}

// The weights as a quantized file would hold them: every matrix through quantize + dequantize.
void fake_quantize(ModelWeights& w, uint32_t type) {
  auto q = [&](std::vector<float>& v) {
    if (v.empty()) return;
    std::vector<uint8_t> bytes = ggml_quantize(v, type);
    REQUIRE(ggml_dequantize(bytes.data(), type, v.size(), v.data()));
  };
  q(w.embed);
  q(w.lm_head);
  for (LayerWeights& L : w.layers) {
    q(L.wqkv);
    q(L.wo);
    q(L.w_gate_up);
    q(L.w_down);
  }
}

fs::path temp_file(const std::string& tag) {
  static int counter = 0;
  return fs::temp_directory_path() / ("twinfer_gguf_" + tag + "_" + std::to_string(::getpid()) +
                                      "_" + std::to_string(counter++) + ".gguf");
}

// The metadata and tensors of a fixture, to rewrite with a mutation.
struct Contents {
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<GgufWriteTensor> tensors;
};
Contents contents(const GgufFile& g) {
  Contents c;
  for (const auto& [k, v] : g.metadata()) c.kv.emplace_back(k, v);
  for (const auto& t : g.tensors())
    c.tensors.push_back({t.name, t.dims, t.type, {t.data.begin(), t.data.end()}});
  return c;
}

std::string load_error(const Contents& c) {
  fs::path p = temp_file("bad");
  write_gguf(p.string(), c.kv, c.tensors);
  std::string msg;
  try {
    load_gguf_model(p.string());
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  fs::remove(p);
  return msg;
}

}  // namespace

TEST_CASE("gguf metadata is exposed with typed accessors", "[gguf]") {
  GgufFile g = GgufFile::open(fixture("tiny_llama/model-bf16.gguf"));
  CHECK(g.version() == 3);
  CHECK(g.get_string("general.architecture") == "llama");
  CHECK(g.get_int("llama.block_count") == 2);
  CHECK(g.get_float("llama.rope.freq_base") == 10000.0);
  CHECK(g.get_int("missing.key", 7) == 7);
  std::vector<std::string> tokens = g.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.size() == 256);
  CHECK(tokens[0x41] == "<0x41>");
  CHECK(g.get_string_array("tokenizer.ggml.merges") == std::vector<std::string>{"<0x41> <0x42>", "<0x43> <0x44>"});
  std::vector<int64_t> types = g.get_int_array("tokenizer.ggml.token_type");
  REQUIRE(types.size() == 256);
  CHECK(types[1] == 3);
  CHECK(types[100] == 1);
  CHECK(g.get_int("tokenizer.ggml.eos_token_id") == 2);
  CHECK_THROWS_WITH(g.get_int("general.architecture"),
                    Contains("model-bf16.gguf") && Contains("'general.architecture' is not an integer"));
  CHECK_THROWS_WITH(g.get_string("nope"), Contains("missing GGUF metadata key 'nope'"));
  const GgufTensor* t = g.find_tensor("blk.0.ffn_down.weight");
  REQUIRE(t != nullptr);
  CHECK(t->dims == std::vector<int64_t>{96, 64});
  CHECK(ggml_type_name(t->type) == "BF16");
}

TEST_CASE("bf16 gguf gives the safetensors weights, Q/K permutation undone", "[gguf]") {
  ModelWeights st = load_model_weights(fixture("tiny_llama"));
  ModelWeights gg = load_model_weights(fixture("tiny_llama/model-bf16.gguf"));
  CHECK(gg.spec.architecture == "llama");
  CHECK(gg.spec.num_kv_heads == 2);
  CHECK(gg.spec.head_dim == 16);
  CHECK(!gg.spec.tie_word_embeddings);
  CHECK(gg.spec.dtype == DType::bf16);
  CHECK(gg.embed == st.embed);
  CHECK(gg.lm_head == st.lm_head);
  for (size_t l = 0; l < 2; ++l) {
    CHECK(gg.layers[l].wqkv == st.layers[l].wqkv);
    CHECK(gg.layers[l].w_gate_up == st.layers[l].w_gate_up);
    CHECK(gg.layers[l].w_down == st.layers[l].w_down);
    CHECK(gg.layers[l].attn_norm == st.layers[l].attn_norm);
  }
  CHECK(max_abs_diff(last_logits(gg, ref_prompt("tiny_llama")), ref_last_logits("tiny_llama")) < 1e-4f);
}

TEST_CASE("f16 gguf with llama3 rope_freqs matches the HF scaling", "[gguf]") {
  ModelWeights st = load_model_weights(fixture("tiny_llama3"));
  ModelWeights gg = load_model_weights(fixture("tiny_llama3/model-f16.gguf"));
  REQUIRE(gg.rope_inv_freq.size() == 8);
  for (size_t i = 0; i < 8; ++i) CHECK(gg.rope_inv_freq[i] == Approx(st.rope_inv_freq[i]).epsilon(1e-6));
  CHECK(gg.spec.tie_word_embeddings);
  CHECK(max_abs_diff(last_logits(gg, ref_prompt("tiny_llama3")), ref_last_logits("tiny_llama3")) < 2e-3f);
}

TEST_CASE("quantized gguf: our quantizers agree with gguf-py's bytes and logits stay close", "[gguf]") {
  struct Case {
    const char* model;
    const char* file;
    uint32_t type;
    float tol;  // max abs logit error against the unquantized fp32 reference
  };
  for (Case c : {Case{"tiny_llama", "model-q8_0.gguf", 8, 0.1f},
                 Case{"tiny_qwen2", "model-q4_0.gguf", 2, 1.5f},
                 Case{"tiny_qwen2", "model-q4_1.gguf", 3, 1.5f}}) {
    INFO(c.file);
    ModelWeights st = load_model_weights(fixture(c.model));
    GgufFile g = GgufFile::open(fixture(c.model) + "/" + c.file);
    const GgufTensor* t = g.find_tensor("blk.1.ffn_down.weight");
    REQUIRE(t != nullptr);
    CHECK(t->type == c.type);
    std::vector<uint8_t> ours = ggml_quantize(st.layers[1].w_down, c.type);
    CHECK(std::equal(ours.begin(), ours.end(), t->data.begin(), t->data.end()));
    // Dequantized values lie within one quantization step of the originals.
    std::vector<float> deq = g.dequantize(*t);
    CHECK(max_abs_diff(deq, st.layers[1].w_down) < (c.type == 8 ? 0.01f : 0.12f));
    ModelWeights gg = load_gguf_model(fixture(c.model) + "/" + c.file);
    CHECK(gg.spec.dtype == (c.type == 8 ? DType::q8_0 : c.type == 2 ? DType::q4_0 : DType::q4_1));
    std::vector<float> logits = last_logits(gg, ref_prompt(c.model));
    CHECK(max_abs_diff(logits, ref_last_logits(c.model)) < c.tol);
    // Exactly the quantization error: the safetensors model with the same rounding agrees.
    fake_quantize(st, c.type);
    CHECK(max_abs_diff(logits, last_logits(st, ref_prompt(c.model))) < 1e-5f);
  }
}

TEST_CASE("gguf writer round-trips metadata types and tensors", "[gguf]") {
  GgufValue i8;
  i8.type = GgufType::i8;
  i8.i = -5;
  GgufValue b;
  b.type = GgufType::boolean;
  b.b = true;
  GgufValue big;
  big.type = GgufType::u64;
  big.i = int64_t{1} << 40;
  GgufValue fa;
  fa.type = GgufType::array;
  fa.elem_type = GgufType::f32;
  fa.floats = {0.5, -1.25};
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  fs::path p = temp_file("rt");
  write_gguf(p.string(),
             {{"a.str", gguf_string("hi")}, {"a.i8", i8}, {"a.bool", b}, {"a.big", big},
              {"a.f", gguf_f32(0.25f)}, {"a.arr", gguf_string_array({"x", "", "zz"})},
              {"a.floats", fa}, {"general.alignment", gguf_u32(64)}},
             {{"t.f32", {64}, 0, ggml_quantize(x, 0)},
              {"t.q8", {32, 2}, 8, ggml_quantize(x, 8)},
              {"t.f16", {64}, 1, ggml_quantize(x, 1)}},
             64);
  GgufFile g = GgufFile::open(p.string());
  CHECK(g.alignment() == 64);
  CHECK(g.get_string("a.str") == "hi");
  CHECK(g.get_int("a.i8") == -5);
  CHECK(g.get_bool("a.bool", false));
  CHECK(g.get_int("a.big") == int64_t{1} << 40);
  CHECK(g.get_float("a.f") == 0.25);
  CHECK(g.get_string_array("a.arr") == std::vector<std::string>{"x", "", "zz"});
  CHECK(g.get_float_array("a.floats") == std::vector<float>{0.5f, -1.25f});
  CHECK(g.dequantize(*g.find_tensor("t.f32")) == x);
  CHECK(max_abs_diff(g.dequantize(*g.find_tensor("t.q8")), x) < 3.0f / 127.0f);
  CHECK(max_abs_diff(g.dequantize(*g.find_tensor("t.f16")), x) < 2e-3f);
  CHECK(g.find_tensor("t.f16")->offset % 64 == 0);
  fs::remove(p);
}

TEST_CASE("truncated or corrupt gguf files raise ConfigError naming the file", "[gguf]") {
  std::ifstream in(fixture("tiny_qwen2/model-q4_0.gguf"), std::ios::binary);
  std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Every truncation point before the data section ends fails cleanly.
  int failures = 0;
  for (size_t n = 0; n < all.size(); n += (n < 12000 ? 1 : 997)) {
    try {
      GgufFile::parse(std::span(all).first(n), "cut.gguf");
    } catch (const ConfigError& e) {
      CHECK_THAT(e.what(), Contains("cut.gguf"));
      ++failures;
    }
  }
  CHECK(failures > 12000);
  auto err = [&](std::vector<uint8_t> b) {
    try {
      GgufFile::parse(b, "x.gguf");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto bad = all;
  bad[0] = 'X';
  CHECK_THAT(err(bad), Contains("magic"));
  bad = all;
  bad[4] = 1;
  CHECK_THAT(err(bad), Contains("version 1, expected 2 or 3"));
  bad = all;
  bad[15] = 0x40;  // tensor count ~ 2^62
  CHECK_THAT(err(bad), Contains("tensor count"));
  CHECK_THROWS_WITH(GgufFile::open("/nonexistent.gguf"), Contains("/nonexistent.gguf"));
}

TEST_CASE("gguf model errors name the tensor and what was expected", "[gguf]") {
  GgufFile g = GgufFile::open(fixture("tiny_qwen2/model-q4_0.gguf"));
  Contents c = contents(g);
  CHECK(load_error(c).empty());
  SECTION("unknown architecture") {
    for (auto& [k, v] : c.kv)
      if (k == "general.architecture") v = gguf_string("gpt2");
    CHECK_THAT(load_error(c), Contains("general.architecture 'gpt2' unsupported"));
  }
  SECTION("missing tensor") {
    std::erase_if(c.tensors, [](const GgufWriteTensor& t) { return t.name == "blk.1.attn_v.bias"; });
    CHECK_THAT(load_error(c), Contains("missing tensor 'blk.1.attn_v.bias'"));
  }
  SECTION("wrong shape") {
    for (auto& [k, v] : c.kv)
      if (k == "qwen2.feed_forward_length") v = gguf_u32(96);
    CHECK_THAT(load_error(c), Contains("'blk.0.ffn_gate.weight' has ggml dims [64, 128], expected [64, 96]"));
  }
  SECTION("unexpected tensor") {
    for (auto& [k, v] : c.kv)
      if (k == "qwen2.block_count") v = gguf_u32(1);
    CHECK_THAT(load_error(c), Contains("unexpected tensor 'blk.1."));
  }
  SECTION("unsupported tensor type") {
    for (auto& t : c.tensors)
      if (t.name == "blk.0.ffn_up.weight") {
        t.type = 6;  // Q5_0: 22 bytes per 32 values
        t.data.assign(64 * 128 / 32 * 22, 0);
      }
    CHECK_THAT(load_error(c), Contains("'blk.0.ffn_up.weight' has type Q5_0, expected one of"));
  }
}
