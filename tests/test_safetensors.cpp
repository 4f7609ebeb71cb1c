#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/weights.h"

using namespace twinfer;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

std::string fixture(const std::string& name) {
  return std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/" + name;
}

// A fresh, empty folder under the system temp dir.
fs::path temp_dir(const std::string& tag) {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() /
               ("twinfer_st_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A safetensors file from a raw header text and data bytes.
std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    SafetensorsFile::parse(bytes, "bad.safetensors");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void copy_fixture(const std::string& name, const fs::path& dst) {
  fs::copy_file(fixture(name) + "/config.json", dst / "config.json");
  fs::copy_file(fixture(name) + "/model.safetensors", dst / "model.safetensors");
}

void edit_config(const fs::path& dir, const std::string& key, Json value) {
  Json cfg = Json::parse_file((dir / "config.json").string());
  cfg[key] = std::move(value);
  std::ofstream((dir / "config.json")) << cfg.dump(2);
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, bytes and metadata", "[safetensors]") {
  fs::path d = temp_dir("rt");
  std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.0f, 5.0f, 6.0f};
  std::vector<uint16_t> b = {f32_to_bf16(0.5f), f32_to_bf16(-1.0f), f32_to_bf16(3.0f)};
  std::vector<SafetensorsTensorData> ts = {
      {"w.a", "F32", {2, 3}, {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4}},
      {"w.b", "BF16", {3}, {reinterpret_cast<const uint8_t*>(b.data()), b.size() * 2}},
      {"empty", "F16", {0, 4}, {}},
  };
  write_safetensors((d / "x.safetensors").string(), ts, {{"format", "pt"}});
  SafetensorsFile f = SafetensorsFile::open((d / "x.safetensors").string());
  REQUIRE(f.tensors().size() == 3);
  CHECK(f.metadata().at("format") == "pt");
  const SafetensorsTensor* ta = f.find("w.a");
  REQUIRE(ta != nullptr);
  CHECK(ta->dtype == "F32");
  CHECK(ta->shape == std::vector<int64_t>{2, 3});
  CHECK(std::memcmp(ta->data.data(), a.data(), 24) == 0);
  // The header is padded so the data buffer starts 8-byte aligned.
  CHECK((ta->data.data() - f.find("w.b")->data.data()) % 2 == 0);
  CHECK(bf16_to_f32(*reinterpret_cast<const uint16_t*>(f.find("w.b")->data.data())) == 0.5f);
  CHECK(f.find("empty")->numel() == 0);
  CHECK(f.find("nope") == nullptr);
  fs::remove_all(d);
}

TEST_CASE("16-bit float conversions round to nearest even", "[safetensors]") {
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0xc000) == -2.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f16_to_f32(0x7bff) == 65504.0f);
  CHECK(std::isinf(f16_to_f32(0x7c00)));
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(70000.0f) == 0x7c00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie -> even
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // tie -> even
  CHECK(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  for (uint32_t h = 0; h < 0x7c00; h += 7) CHECK(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h);
}

TEST_CASE("safetensors parser rejects what the reference rejects", "[safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse_error(raw_file(ok, 8)).empty());
  CHECK_THAT(parse_error({1, 2, 3}), Contains("bad.safetensors") && Contains("at least 8"));
  CHECK_THAT(parse_error(raw_file(ok, 4)), Contains("data_offsets end 8 is past the data buffer"));
  CHECK_THAT(parse_error(raw_file(ok, 12)), Contains("trailing bytes"));
  auto too_long = raw_file(ok, 8);
  too_long[0] = 0xff;
  CHECK_THAT(parse_error(too_long), Contains("runs past the end"));
  auto huge = raw_file(ok, 8);
  huge[4] = 0x01;  // 2^32 + ...
  CHECK_THAT(parse_error(huge), Contains("100000000-byte limit"));
  CHECK_THAT(parse_error(raw_file("[1]", 0)), Contains("does not start with '{'"));
  CHECK_THAT(parse_error(raw_file("{\"a\":", 0)), Contains("not valid JSON"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4)),
             Contains("tensor 'a'") && Contains("dtype"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4)),
             Contains("unknown dtype 'Q9'"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
             Contains("non-negative"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
             Contains("tensor 'a'") && Contains("expected 12"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8)),
             Contains("< begin"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
             Contains("tensor 'a' starts at offset 4, expected 0"));
  // Overlap: b starts inside a.
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                  8)),
             Contains("contiguous"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],)"
                                  R"("data_offsets":[0,8]}})",
                                  8)),
             Contains("tensor 'a'"));
  CHECK_THAT(parse_error(raw_file(R"({"__metadata__":{"k":1}})", 0)), Contains("__metadata__.k"));
  CHECK_THAT(parse_error(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4)),
             Contains("unknown field 'x'"));
}

TEST_CASE("safetensors open names the path of a missing or truncated file", "[safetensors]") {
  CHECK_THROWS_WITH(SafetensorsFile::open("/nonexistent/m.safetensors"),
                    Contains("/nonexistent/m.safetensors") && Contains("cannot open"));
  fs::path d = temp_dir("trunc");
  std::ifstream in(fixture("tiny_llama/model.safetensors"), std::ios::binary);
  std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  all.resize(all.size() - 100);
  write_bytes(d / "model.safetensors", all);
  CHECK_THROWS_WITH(SafetensorsFile::open((d / "model.safetensors").string()),
                    Contains((d / "model.safetensors").string()) &&
                        Contains("is past the data buffer"));
  fs::remove_all(d);
}

TEST_CASE("safetensors model folder loads and checks every tensor against config", "[safetensors]") {
  ModelWeights w = load_safetensors_model(fixture("tiny_llama"));
  CHECK(w.spec.architecture == "llama");
  CHECK(w.spec.num_kv_heads == 2);
  CHECK(w.layers.size() == 2);
  CHECK(w.layers[0].wqkv.size() == (64 + 2 * 32) * 64);
  CHECK(w.lm_head.size() == 256 * 64);
  CHECK(w.layers[0].bqkv.empty());
  ModelWeights q = load_safetensors_model(fixture("tiny_qwen2"));
  CHECK(q.spec.qkv_bias);
  CHECK(q.lm_head.empty());  // tied
  CHECK(q.layers[1].bqkv.size() == 128);

  // The loaded value of one element equals the bf16 in the file.
  SafetensorsFile f = SafetensorsFile::open(fixture("tiny_llama/model.safetensors"));
  const auto* k = f.find("model.layers.1.self_attn.k_proj.weight");
  uint16_t h;
  std::memcpy(&h, k->data.data() + 2 * (5 * 64 + 7), 2);
  CHECK(w.layers[1].wqkv[(64 + 5) * 64 + 7] == bf16_to_f32(h));
}

TEST_CASE("safetensors loader errors name the file, tensor and expectation", "[safetensors]") {
  fs::path d = temp_dir("cfg");
  SECTION("shape against config") {
    copy_fixture("tiny_llama", d);
    edit_config(d, "intermediate_size", Json(int64_t{80}));
    CHECK_THROWS_WITH(load_safetensors_model(d.string()),
                      Contains((d / "model.safetensors").string()) &&
                          Contains("model.layers.0.mlp.gate_proj.weight") &&
                          Contains("[96, 64]") && Contains("expected [80, 64]"));
  }
  SECTION("missing lm_head when untied") {
    copy_fixture("tiny_qwen2", d);
    edit_config(d, "tie_word_embeddings", Json(false));
    CHECK_THROWS_WITH(load_safetensors_model(d.string()), Contains("missing tensor 'lm_head.weight'"));
  }
  SECTION("unexpected tensor") {
    copy_fixture("tiny_llama", d);
    edit_config(d, "num_hidden_layers", Json(int64_t{1}));
    CHECK_THROWS_WITH(load_safetensors_model(d.string()),
                      Contains("unexpected tensor 'model.layers.1."));
  }
  SECTION("unknown architecture") {
    copy_fixture("tiny_llama", d);
    edit_config(d, "model_type", Json("gpt2"));
    CHECK_THROWS_WITH(load_safetensors_model(d.string()), Contains("gpt2") && Contains("config.json"));
  }
  SECTION("activation") {
    copy_fixture("tiny_llama", d);
    edit_config(d, "hidden_act", Json("gelu"));
    CHECK_THROWS_WITH(load_safetensors_model(d.string()), Contains("hidden_act 'gelu'"));
  }
  SECTION("integer dtype") {
    fs::copy_file(fixture("tiny_llama/config.json"), d / "config.json");
    SafetensorsFile f = SafetensorsFile::open(fixture("tiny_llama/model.safetensors"));
    std::vector<int32_t> ints(64, 1);
    std::vector<SafetensorsTensorData> ts;
    for (const auto& t : f.tensors()) {
      if (t.name == "model.norm.weight")
        ts.push_back({t.name, "I32", {64}, {reinterpret_cast<const uint8_t*>(ints.data()), 256}});
      else
        ts.push_back({t.name, t.dtype, t.shape, t.data});
    }
    write_safetensors((d / "model.safetensors").string(), ts);
    CHECK_THROWS_WITH(load_safetensors_model(d.string()),
                      Contains("tensor 'model.norm.weight' has dtype I32, expected F32, F16 or BF16"));
  }
  SECTION("no weights") {
    fs::copy_file(fixture("tiny_llama/config.json"), d / "config.json");
    CHECK_THROWS_WITH(load_safetensors_model(d.string()),
                      Contains("expected model.safetensors or model.safetensors.index.json"));
  }
  SECTION("no config") {
    CHECK_THROWS_WITH(load_safetensors_model(d.string()), Contains("config.json"));
  }
  fs::remove_all(d);
}

TEST_CASE("sharded checkpoints load through the index", "[safetensors]") {
  fs::path d = temp_dir("shard");
  fs::copy_file(fixture("tiny_llama/config.json"), d / "config.json");
  SafetensorsFile f = SafetensorsFile::open(fixture("tiny_llama/model.safetensors"));
  std::vector<SafetensorsTensorData> a, b;
  Json wm = Json::object();
  for (const auto& t : f.tensors()) {
    const bool first = t.name.find("layers.1.") == std::string::npos && t.name != "lm_head.weight";
    (first ? a : b).push_back({t.name, t.dtype, t.shape, t.data});
    wm[t.name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors((d / "model-00001-of-00002.safetensors").string(), a);
  write_safetensors((d / "model-00002-of-00002.safetensors").string(), b);
  Json idx = Json::object();
  idx["weight_map"] = wm;
  std::ofstream(d / "model.safetensors.index.json") << idx.dump();
  ModelWeights one = load_safetensors_model(fixture("tiny_llama"));
  ModelWeights two = load_safetensors_model(d.string());
  CHECK(one.layers[1].w_down == two.layers[1].w_down);
  CHECK(one.lm_head == two.lm_head);
  CHECK(one.embed == two.embed);

  // An index entry naming a tensor its shard lacks.
  wm["model.extra.weight"] = "model-00001-of-00002.safetensors";
  idx["weight_map"] = wm;
  std::ofstream(d / "model.safetensors.index.json") << idx.dump();
  CHECK_THROWS_WITH(load_safetensors_model(d.string()),
                    Contains("model-00001-of-00002.safetensors") && Contains("model.extra.weight"));
  fs::remove_all(d);
}
