// GPU presets. Nominal datasheet peaks: dense tensor-core FLOP/s (the datasheets quote the
// 2:4-sparsity figure; dense is half of it), peak memory bandwidth, memory as the datasheet's
// "GB" read as GiB (HBM stacks are binary-sized: an "80GB" H100 reports 80 GiB minus the
// driver's reserve), and link bandwidths per direction (datasheets quote NVLink and PCIe as
// bidirectional totals, so we halve them).
#include "sim/hardware.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace twinfer {

namespace {

constexpr double kT = 1e12;            // TFLOP/s and TB/s
constexpr double kG = 1e9;             // GB/s
constexpr double kGiB = 1073741824.0;  // memory capacity

HardwareSpec make(const char* name, const char* desc, double bf16, double fp8, double hbm,
                  double mem_gib, double interconnect, double pcie, const char* source) {
  HardwareSpec h;
  h.name = name;
  h.description = desc;
  h.bf16_flops = bf16;
  h.fp8_flops = fp8;
  h.hbm_bandwidth = hbm;
  h.memory_bytes = mem_gib * kGiB;
  h.interconnect_bandwidth = interconnect;
  h.pcie_bandwidth = pcie;
  h.source = source;
  return h;
}

const std::vector<HardwareSpec>& presets() {
  static const std::vector<HardwareSpec> all = {
      make("a100-40g", "NVIDIA A100 40GB SXM4", 312 * kT, 0, 1555 * kG, 40, 300 * kG, 32 * kG,
           "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOPS (624 with "
           "sparsity), no FP8; HBM2 1,555 GB/s; 40GB; NVLink 600 GB/s bidirectional "
           "(300 per direction); PCIe Gen4 64 GB/s bidirectional (32 per direction)"),
      make("a100-80g", "NVIDIA A100 80GB SXM4", 312 * kT, 0, 2039 * kG, 80, 300 * kG, 32 * kG,
           "NVIDIA A100 Tensor Core GPU datasheet: BF16 Tensor Core 312 TFLOPS (624 with "
           "sparsity), no FP8; HBM2e 2,039 GB/s; 80GB; NVLink 600 GB/s bidirectional "
           "(300 per direction); PCIe Gen4 64 GB/s bidirectional (32 per direction)"),
      make("h100-sxm", "NVIDIA H100 80GB SXM5", 989.5 * kT, 1979 * kT, 3.35 * kT, 80, 450 * kG,
           64 * kG,
           "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM): BF16 Tensor Core 1,979 TFLOPS and "
           "FP8 3,958 TFLOPS with sparsity (dense: half); HBM3 3.35 TB/s; 80GB; NVLink "
           "900 GB/s bidirectional (450 per direction); PCIe Gen5 128 GB/s bidirectional "
           "(64 per direction)"),
      make("h100-pcie", "NVIDIA H100 80GB PCIe", 756.5 * kT, 1513 * kT, 2.0 * kT, 80, 64 * kG,
           64 * kG,
           "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe): BF16 Tensor Core 1,513 TFLOPS and "
           "FP8 3,026 TFLOPS with sparsity (dense: half); HBM2e 2 TB/s; 80GB; PCIe Gen5 "
           "128 GB/s bidirectional (64 per direction). GPU-GPU over PCIe: the 600 GB/s NVLink "
           "bridge joins only pairs of cards, so it is not assumed"),
      make("h200", "NVIDIA H200 141GB SXM", 989.5 * kT, 1979 * kT, 4.8 * kT, 141, 450 * kG,
           64 * kG,
           "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM): BF16 Tensor Core 1,979 TFLOPS and "
           "FP8 3,958 TFLOPS with sparsity (dense: half); HBM3e 4.8 TB/s; 141GB; NVLink "
           "900 GB/s bidirectional (450 per direction); PCIe Gen5 128 GB/s bidirectional "
           "(64 per direction)"),
      make("b200", "NVIDIA B200 180GB (HGX/DGX B200)", 2250 * kT, 4500 * kT, 8.0 * kT, 180,
           900 * kG, 64 * kG,
           "NVIDIA DGX B200 / HGX B200 datasheets, per GPU of 8: FP16/BF16 Tensor Core "
           "36 PFLOPS and FP8 72 PFLOPS per 8 GPUs with sparsity (dense per GPU: 2.25 and 4.5 "
           "PFLOPS); 1,440GB HBM3e at 64 TB/s per 8 GPUs (180GB, 8 TB/s each); fifth-generation "
           "NVLink 1.8 TB/s bidirectional (900 GB/s per direction); host link PCIe Gen5 x16 "
           "(64 GB/s per direction)"),
      make("l40s", "NVIDIA L40S 48GB", 362.05 * kT, 733 * kT, 864 * kG, 48, 32 * kG, 32 * kG,
           "NVIDIA L40S GPU datasheet: BF16 Tensor Core 362.05 TFLOPS (733 with sparsity), FP8 "
           "733 TFLOPS (1,466 with sparsity); GDDR6 864 GB/s; 48GB; no NVLink: GPU-GPU and host "
           "over PCIe Gen4 x16, 64 GB/s bidirectional (32 per direction)"),
      make("rtx4090", "NVIDIA GeForce RTX 4090 24GB", 165.2 * kT, 330.3 * kT, 1008 * kG, 24,
           32 * kG, 32 * kG,
           "NVIDIA Ada Lovelace GPU architecture whitepaper (GeForce RTX 4090): peak BF16 Tensor "
           "TFLOPS with FP32 accumulate 165.2 (330.4 with sparsity), FP8 with FP32 accumulate "
           "330.3 (660.6 with sparsity); GDDR6X 1,008 GB/s; 24GB; no NVLink: PCIe Gen4 x16, "
           "32 GB/s per direction"),
  };
  return all;
}

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw ConfigError(source + ": hardware: " + msg);
}

double read_num(const Json& j, const std::string& source, std::string_view key, bool required) {
  const Json* v = j.get(key);
  if (v == nullptr || v->is_null()) {
    if (required) fail(source, "missing field '" + std::string(key) + "'");
    return 0.0;
  }
  double x = 0;
  try {
    x = v->as_number(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
  if (!(x >= 0)) fail(source, "field '" + std::string(key) + "' must be >= 0");
  if (required && x == 0) fail(source, "field '" + std::string(key) + "' must be > 0");
  return x;
}

std::string read_str(const Json& j, const std::string& source, std::string_view key,
                     const std::string& dflt) {
  const Json* v = j.get(key);
  if (v == nullptr || v->is_null()) return dflt;
  try {
    return v->as_string(key);
  } catch (const JsonError& e) {
    fail(source, e.what());
  }
}

}  // namespace

Json HardwareSpec::to_json() const {
  Json j = Json::object();
  j["name"] = name;
  j["description"] = description;
  j["bf16_flops"] = bf16_flops;
  j["fp8_flops"] = fp8_flops;
  j["hbm_bandwidth"] = hbm_bandwidth;
  j["memory_bytes"] = memory_bytes;
  j["interconnect_bandwidth"] = interconnect_bandwidth;
  j["pcie_bandwidth"] = pcie_bandwidth;
  j["source"] = source;
  return j;
}

HardwareSpec HardwareSpec::from_json(const Json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "expected a JSON object");
  static const char* known[] = {"name",          "description",   "bf16_flops",
                                "fp8_flops",     "hbm_bandwidth", "memory_bytes",
                                "interconnect_bandwidth", "pcie_bandwidth", "source"};
  for (const auto& [k, v] : j.as_object()) {
    (void)v;
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      fail(source, "unknown field '" + k + "'");
  }
  HardwareSpec h;
  h.name = read_str(j, source, "name", source);
  h.description = read_str(j, source, "description", "");
  h.bf16_flops = read_num(j, source, "bf16_flops", true);
  h.fp8_flops = read_num(j, source, "fp8_flops", false);
  h.hbm_bandwidth = read_num(j, source, "hbm_bandwidth", true);
  h.memory_bytes = read_num(j, source, "memory_bytes", true);
  h.interconnect_bandwidth = read_num(j, source, "interconnect_bandwidth", false);
  h.pcie_bandwidth = read_num(j, source, "pcie_bandwidth", false);
  h.source = read_str(j, source, "source", source);
  return h;
}

std::optional<HardwareSpec> hardware_preset(std::string_view name) {
  for (const HardwareSpec& h : presets())
    if (h.name == name) return h;
  return std::nullopt;
}

std::vector<std::string> hardware_preset_names() {
  std::vector<std::string> names;
  for (const HardwareSpec& h : presets()) names.push_back(h.name);
  return names;
}

HardwareSpec resolve_hardware(const std::string& name) {
  if (auto h = hardware_preset(name)) return *h;
  // A custom GPU written as a to_json() object in a .json file.
  std::error_code ec;
  if (name.size() > 5 && name.ends_with(".json") && std::filesystem::is_regular_file(name, ec)) {
    try {
      return HardwareSpec::from_json(Json::parse_file(name), name);
    } catch (const JsonError& e) {
      throw ConfigError(e.what());
    }
  }
  std::string known;
  for (const auto& n : hardware_preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError("unknown hardware '" + name + "' (known presets: " + known +
                    "; or a .json file holding a hardware spec)");
}

}  // namespace twinfer
