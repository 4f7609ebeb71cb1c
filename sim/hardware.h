// GPU presets with nominal (datasheet) peaks. Each value cites its source in `source`.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace twinfer {

struct HardwareSpec {
  std::string name;
  std::string description;
  double bf16_flops = 0;       // dense tensor-core FLOP/s (no sparsity)
  double fp8_flops = 0;        // dense; 0 where the GPU has no fp8 tensor cores
  double hbm_bandwidth = 0;    // bytes/s
  double memory_bytes = 0;     // device memory, bytes
  double interconnect_bandwidth = 0;  // GPU-GPU bytes/s per direction (NVLink or PCIe)
  double pcie_bandwidth = 0;   // host link bytes/s per direction (swap traffic)
  std::string source;          // datasheet citation(s)

  Json to_json() const;
  static HardwareSpec from_json(const Json& j, const std::string& source);
};

std::optional<HardwareSpec> hardware_preset(std::string_view name);
std::vector<std::string> hardware_preset_names();
// Throws ConfigError listing the known presets.
HardwareSpec resolve_hardware(const std::string& name);

}  // namespace twinfer
