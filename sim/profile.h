// Calibration profile: the CostParams `twinfer calibrate` measured, with a header naming what
// they were measured on (docs/cost-model.md, "Profile format"). A profile only transfers to runs
// of the same model shape, the same GPU and the same twinfer major.minor: the efficiencies and
// overheads it holds are properties of that combination, so loading it anywhere else is refused.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/model_spec.h"
#include "sim/cost_model.h"

namespace twinfer {

// The shape fields the cost model's FLOP and byte counts depend on. `name` is informational:
// two checkpoints of one shape share a profile.
struct ModelFingerprint {
  std::string name;
  int64_t num_layers = 0, hidden_size = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0,
          vocab_size = 0, intermediate_size = 0;

  static ModelFingerprint of(const ModelSpec& m);
  Json to_json() const;
  // Lines "model.FIELD: profile X, run Y" for every shape field that differs.
  std::vector<std::string> diff(const ModelFingerprint& run) const;
};

struct HwProfile {
  std::string twinfer_version;  // version that wrote it ("0.3.1"); major.minor must match
  ModelFingerprint model;
  std::string gpu;       // hardware preset name the runs used ("h100-sxm")
  std::string gpu_name;  // device name the driver reported ("NVIDIA H100 80GB HBM3"); optional
  std::string kv_cache_dtype;  // dtype of the KV cache during calibration (recorded, not enforced)
  std::string created;         // ISO-8601 UTC time of writing
  CostParams params;
  // Raw calibration points (sim/calibrate.h, CalibMeasurement::to_json), kept so the fit can be
  // redone (`twinfer calibrate --refit`); null when absent. Optional, not checked on load.
  Json measurements;
  // The hardware runs a `twinfer calibrate --from-runs` fit used (array of objects: run name,
  // steps, step-time error before/after); null for a profile fitted on synthetic steps only.
  Json fitted_on;

  Json to_json() const;
  // Requires the header; every header field is checked for type. Throws ConfigError naming
  // `source` and the field.
  static HwProfile from_json(const Json& j, const std::string& source);
  static HwProfile load(const std::string& path);
  // Writes the JSON (2-space indent) to path; throws ConfigError naming the path on failure.
  void save(const std::string& path) const;
};

// What the profile is checked against: the run's model, its hardware preset name (must equal
// the profile's gpu), and the device name a hardware run recorded (empty for simulated runs;
// checked against the profile's gpu_name where both are known).
struct ProfileTarget {
  ModelFingerprint model;
  std::string hardware;
  std::string gpu_name;
  std::string twinfer_version;
};

// One line per mismatch (model shape fields, gpu, version); empty when compatible.
std::vector<std::string> profile_mismatches(const HwProfile& p, const ProfileTarget& t);
// Loads `path` and refuses it (ConfigError, exit 2) when profile_mismatches is non-empty; the
// message lists every difference.
HwProfile load_compatible_profile(const std::string& path, const ProfileTarget& t);

// "0.3" from "0.3.1" (and "0" from "0"): the part that must agree.
std::string version_major_minor(const std::string& v);
// Current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_timestamp_now();

}  // namespace twinfer
