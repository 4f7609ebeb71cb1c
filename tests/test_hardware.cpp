#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "sim/hardware.h"

using namespace twinfer;

namespace {
HardwareSpec hw(const char* name) {
  auto h = hardware_preset(name);
  REQUIRE(h.has_value());
  return *h;
}
}  // namespace

TEST_CASE("all hardware presets exist with cited, sane values", "[hardware]") {
  const char* required[] = {"a100-40g", "a100-80g", "h100-sxm", "h100-pcie",
                            "h200",     "b200",     "l40s",     "rtx4090"};
  auto names = hardware_preset_names();
  CHECK(names.size() >= 8);
  for (const char* n : required) {
    INFO(n);
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
    HardwareSpec h = hw(n);
    CHECK(h.name == n);
    CHECK(h.bf16_flops > 1e14);
    CHECK(h.hbm_bandwidth > 5e11);
    CHECK(h.memory_bytes >= 24.0 * (1 << 30));
    CHECK(h.interconnect_bandwidth > 0);
    CHECK(h.pcie_bandwidth > 0);
    bool cited = h.source.find("datasheet") != std::string::npos ||
                 h.source.find("whitepaper") != std::string::npos;
    CHECK(cited);
    // Where fp8 exists it doubles bf16 (L40S datasheet: 362.05 vs 733, hence 2%).
    if (h.fp8_flops > 0) CHECK(h.fp8_flops == Approx(2 * h.bf16_flops).epsilon(0.02));
  }
}

TEST_CASE("datasheet values of the common GPUs", "[hardware]") {
  HardwareSpec h = hw("h100-sxm");
  CHECK(h.bf16_flops == 989.5e12);
  CHECK(h.fp8_flops == 1979e12);
  CHECK(h.hbm_bandwidth == 3.35e12);
  CHECK(h.memory_bytes == 80.0 * 1073741824.0);
  CHECK(h.interconnect_bandwidth == 450e9);
  CHECK(h.source.find("H100") != std::string::npos);
  CHECK(hw("a100-80g").fp8_flops == 0);  // Ampere has no fp8 tensor cores
  CHECK(hw("a100-80g").hbm_bandwidth == 2039e9);
  CHECK(hw("a100-40g").hbm_bandwidth == 1555e9);
  CHECK(hw("h200").hbm_bandwidth == 4.8e12);
  CHECK(hw("h200").memory_bytes == 141.0 * 1073741824.0);
  CHECK(hw("l40s").hbm_bandwidth == 864e9);
  CHECK(hw("rtx4090").bf16_flops == 165.2e12);
  CHECK(hw("b200").bf16_flops == 2.25e15);
}

TEST_CASE("resolve_hardware lists the presets on an unknown name", "[hardware]") {
  CHECK(resolve_hardware("l40s").name == "l40s");
  try {
    resolve_hardware("h300");
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    CHECK(msg.find("h300") != std::string::npos);
    for (const auto& n : hardware_preset_names()) CHECK(msg.find(n) != std::string::npos);
  }
}

TEST_CASE("hardware to_json / from_json round-trip and errors", "[hardware]") {
  for (const auto& n : hardware_preset_names()) {
    HardwareSpec a = hw(n.c_str());
    HardwareSpec b = HardwareSpec::from_json(Json::parse(a.to_json().dump()), "cfg.json");
    CHECK(b.to_json().dump() == a.to_json().dump());
  }
  Json j = hw("h100-sxm").to_json();
  j["hbm_bw"] = 1.0;
  CHECK_THROWS_WITH(HardwareSpec::from_json(j, "run/config.json"),
                    Catch::Contains("run/config.json") && Catch::Contains("hbm_bw"));
  Json k = hw("h100-sxm").to_json();
  k["bf16_flops"] = "fast";
  CHECK_THROWS_WITH(HardwareSpec::from_json(k, "x.json"), Catch::Contains("bf16_flops"));
  Json m = Json::parse(R"({"name": "mine", "bf16_flops": 1e14, "hbm_bandwidth": 1e12})");
  CHECK_THROWS_WITH(HardwareSpec::from_json(m, "x.json"), Catch::Contains("memory_bytes"));
  m["memory_bytes"] = -1.0;
  CHECK_THROWS_AS(HardwareSpec::from_json(m, "x.json"), ConfigError);

  // A custom GPU from a file.
  auto path = std::filesystem::temp_directory_path() / "twinfer_test_custom_gpu.json";
  m["memory_bytes"] = 16e9;
  std::ofstream(path) << m.dump();
  HardwareSpec c = resolve_hardware(path.string());
  CHECK(c.name == "mine");
  CHECK(c.memory_bytes == 16e9);
  CHECK(c.fp8_flops == 0);
  std::filesystem::remove(path);
}
