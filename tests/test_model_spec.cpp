#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/model_spec.h"

using namespace twinfer;

namespace {

const std::string kFixtures = std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/hf_configs/";

ModelSpec preset(const char* name) {
  auto m = model_preset(name);
  REQUIRE(m.has_value());
  return *m;
}

// A scratch folder under the system temp dir, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("twinfer_model_spec_" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

}  // namespace

TEST_CASE("dtype sizes and names", "[model]") {
  CHECK(dtype_bytes(DType::f32) == 4.0);
  CHECK(dtype_bytes(DType::bf16) == 2.0);
  CHECK(dtype_bytes(DType::f16) == 2.0);
  CHECK(dtype_bytes(DType::fp8_e4m3) == 1.0);
  CHECK(dtype_bytes(DType::q8_0) == 34.0 / 32.0);
  CHECK(dtype_bytes(DType::q4_0) == 18.0 / 32.0);
  CHECK(dtype_bytes(DType::q4_1) == 20.0 / 32.0);

  CHECK(parse_dtype("bf16") == DType::bf16);
  CHECK(parse_dtype("bfloat16") == DType::bf16);
  CHECK(parse_dtype("fp16") == DType::f16);
  CHECK(parse_dtype("float16") == DType::f16);
  CHECK(parse_dtype("half") == DType::f16);
  CHECK(parse_dtype("fp32") == DType::f32);
  CHECK(parse_dtype("float32") == DType::f32);
  CHECK(parse_dtype("fp8") == DType::fp8_e4m3);
  CHECK(parse_dtype("fp8_e4m3") == DType::fp8_e4m3);
  CHECK(parse_dtype("BF16") == DType::bf16);
  CHECK_FALSE(parse_dtype("int3").has_value());
  CHECK_FALSE(parse_dtype("").has_value());
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::fp8_e4m3, DType::q8_0, DType::q4_0,
                  DType::q4_1})
    CHECK(parse_dtype(dtype_name(t)) == t);
}

TEST_CASE("preset parameter counts match the published totals", "[model]") {
  // Totals as reported by the models' safetensors index / model cards.
  CHECK(preset("llama-2-7b").param_count() == 6'738'415'616);
  CHECK(preset("llama-2-13b").param_count() == 13'015'864'320);
  CHECK(preset("llama-2-70b").param_count() == 68'976'648'192);
  CHECK(preset("llama-3-8b").param_count() == 8'030'261'248);
  CHECK(preset("llama-3-70b").param_count() == 70'553'706'496);
  CHECK(preset("llama-3.1-8b").param_count() == 8'030'261'248);
  CHECK(preset("mistral-7b").param_count() == 7'241'732'096);
  CHECK(preset("qwen2.5-7b").param_count() == 7'615'616'512);
  CHECK(preset("smollm2-135m").param_count() == 134'515'008);  // tied embeddings
}

TEST_CASE("weight and KV bytes are GQA-aware", "[model]") {
  ModelSpec l3 = preset("llama-3-8b");
  CHECK(l3.q_dim() == 4096);
  CHECK(l3.kv_dim() == 1024);
  CHECK(l3.kv_bytes_per_token(DType::bf16) == 131072.0);
  CHECK(l3.kv_bytes_per_token(DType::fp8_e4m3) == 65536.0);
  CHECK(preset("llama-2-70b").kv_bytes_per_token(DType::bf16) == 327680.0);
  CHECK(preset("llama-2-7b").kv_bytes_per_token(DType::f16) == 524288.0);  // MHA: 2*32*4096*2
  CHECK(preset("qwen2.5-7b").kv_bytes_per_token(DType::bf16) == 57344.0);  // 2*28*512*2
  CHECK(l3.weight_bytes(DType::bf16) == 2.0 * 8'030'261'248);
  CHECK(l3.weight_bytes(DType::q4_0) == 8'030'261'248 * 18.0 / 32.0);
  CHECK(l3.weight_bytes() == l3.weight_bytes(DType::bf16));
  CHECK(preset("llama-2-7b").dtype == DType::f16);
}

TEST_CASE("presets carry the published config values", "[model]") {
  ModelSpec l3 = preset("llama-3-8b");
  CHECK(l3.vocab_size == 128256);
  CHECK(l3.max_position_embeddings == 8192);
  CHECK(l3.rope_theta == 500000.0);
  CHECK(l3.bos_token_id == 128000);
  CHECK(l3.eos_token_ids == std::vector<int64_t>{128001});
  CHECK(l3.rope_scaling_type.empty());
  ModelSpec s = preset("smollm2-135m");
  CHECK(s.tie_word_embeddings);
  CHECK(s.head_dim == 64);
  CHECK(s.num_kv_heads == 3);
  CHECK(preset("qwen2.5-7b").qkv_bias);
  CHECK_FALSE(preset("mistral-7b").qkv_bias);
  auto names = model_preset_names();
  for (const char* n : {"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b",
                        "mistral-7b", "qwen2.5-7b", "smollm2-135m"})
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
}

TEST_CASE("HF configs parse to the same shapes as the presets", "[model]") {
  ModelSpec l31 = resolve_model(kFixtures + "llama-3.1-8b-instruct.json");
  CHECK(l31.name == kFixtures + "llama-3.1-8b-instruct.json");
  CHECK(l31.param_count() == 8'030'261'248);
  CHECK(l31.rope_scaling_type == "llama3");
  CHECK(l31.rope_factor == 8.0);
  CHECK(l31.rope_low_freq_factor == 1.0);
  CHECK(l31.rope_high_freq_factor == 4.0);
  CHECK(l31.rope_original_max_position == 8192);
  CHECK(l31.max_position_embeddings == 131072);
  CHECK(l31.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  CHECK(l31.dtype == DType::bf16);
  CHECK(l31.to_json().dump() != "");

  ModelSpec q = resolve_model(kFixtures + "qwen2.5-7b.json");
  ModelSpec qp = preset("qwen2.5-7b");
  CHECK(q.architecture == "qwen2");
  CHECK(q.qkv_bias);
  CHECK(q.rms_norm_eps == 1e-6);
  CHECK(q.param_count() == qp.param_count());
  CHECK(q.kv_bytes_per_token(DType::bf16) == qp.kv_bytes_per_token(DType::bf16));

  ModelSpec mi = resolve_model(kFixtures + "mistral-7b-v0.1.json");
  CHECK(mi.architecture == "mistral");
  CHECK(mi.param_count() == preset("mistral-7b").param_count());
  CHECK(mi.max_position_embeddings == 32768);
  CHECK(mi.bos_token_id == 1);
}

TEST_CASE("to_json / from_json round-trips every preset", "[model]") {
  for (const std::string& n : model_preset_names()) {
    ModelSpec a = preset(n.c_str());
    Json j = Json::parse(a.to_json().dump(2));
    ModelSpec b = ModelSpec::from_json(j, "config.json");
    CHECK(b.to_json().dump() == a.to_json().dump());
    CHECK(b.param_count() == a.param_count());
  }
  Json bad = preset("llama-3-8b").to_json();
  bad["num_layerz"] = 3;
  CHECK_THROWS_WITH(ModelSpec::from_json(bad, "run/config.json"),
                    Catch::Contains("run/config.json") && Catch::Contains("num_layerz"));
}

TEST_CASE("HF config errors name the file and the field", "[model]") {
  Json cfg = Json::parse(R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
      "intermediate_size": 11008, "num_attention_heads": 32, "max_position_embeddings": 4096})");
  CHECK_THROWS_AS(ModelSpec::from_hf_config(cfg, "m/config.json"), ConfigError);
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(cfg, "m/config.json"),
                    Catch::Contains("m/config.json") &&
                        Catch::Contains("missing field 'num_hidden_layers'"));
  cfg["num_hidden_layers"] = 32;
  // Defaults: no GQA (kv heads = heads), untied, head_dim = hidden / heads: llama-2-7b.
  CHECK(ModelSpec::from_hf_config(cfg, "m/config.json").param_count() == 6'738'415'616);

  Json c2 = cfg;
  c2["hidden_size"] = 4096.5;
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"),
                    Catch::Contains("x.json") && Catch::Contains("hidden_size"));
  c2 = cfg;
  c2["num_key_value_heads"] = 5;
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"),
                    Catch::Contains("num_key_value_heads"));
  c2 = cfg;
  c2["model_type"] = "gpt2";
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"), Catch::Contains("gpt2"));
  c2 = cfg;
  c2["rope_scaling"] = Json::parse(R"({"rope_type": "yarn", "factor": 4.0})");
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"), Catch::Contains("yarn"));
  c2 = cfg;
  c2["rope_scaling"] = Json::parse(R"({"rope_type": "llama3", "factor": 8.0})");
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"),
                    Catch::Contains("rope_scaling.low_freq_factor"));
  c2 = cfg;
  c2["torch_dtype"] = "float64";
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"), Catch::Contains("float64"));
  c2 = cfg;
  c2["eos_token_id"] = "two";
  CHECK_THROWS_WITH(ModelSpec::from_hf_config(c2, "x.json"), Catch::Contains("eos_token_id"));
  CHECK_THROWS_AS(ModelSpec::from_hf_config(Json::parse("[1]"), "x.json"), ConfigError);
}

TEST_CASE("resolve_model: presets, files, folders and unknown names", "[model]") {
  CHECK(resolve_model("llama-2-70b").num_kv_heads == 8);

  TempDir dir;
  std::string good = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 49152,
      "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
      "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
      "rope_theta": 100000, "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 0})";
  dir.write("config.json", good);
  ModelSpec fromdir = resolve_model(dir.path.string());
  CHECK(fromdir.param_count() == 134'515'008);
  CHECK(fromdir.name == (dir.path / "config.json").string());

  std::string broken = dir.write("broken.json", "{\"vocab_size\": 1,\n  \"hidden_size\": }");
  CHECK_THROWS_AS(resolve_model(broken), ConfigError);
  CHECK_THROWS_WITH(resolve_model(broken), Catch::Contains("broken.json:2:"));

  std::string missing = dir.write("missing.json", R"({"model_type": "qwen2", "vocab_size": 10})");
  CHECK_THROWS_WITH(resolve_model(missing),
                    Catch::Contains("missing.json") && Catch::Contains("'hidden_size'"));

  std::filesystem::create_directories(dir.path / "empty");
  CHECK_THROWS_WITH(resolve_model((dir.path / "empty").string()),
                    Catch::Contains("no config.json"));

  try {
    resolve_model("llama-9-1b");
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    CHECK(msg.find("llama-9-1b") != std::string::npos);
    for (const std::string& n : model_preset_names()) CHECK(msg.find(n) != std::string::npos);
  }
}
