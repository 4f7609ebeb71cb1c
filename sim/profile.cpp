#include "sim/profile.h"

#include <cmath>
#include <ctime>
#include <fstream>

#include "core/error.h"

namespace twinfer {

namespace {

struct ShapeField {
  const char* name;
  int64_t ModelFingerprint::*ptr;
};
constexpr ShapeField kShape[] = {
    {"num_layers", &ModelFingerprint::num_layers},
    {"hidden_size", &ModelFingerprint::hidden_size},
    {"num_heads", &ModelFingerprint::num_heads},
    {"num_kv_heads", &ModelFingerprint::num_kv_heads},
    {"head_dim", &ModelFingerprint::head_dim},
    {"vocab_size", &ModelFingerprint::vocab_size},
    {"intermediate_size", &ModelFingerprint::intermediate_size},
};

const Json& field(const Json& j, const char* key, const std::string& source,
                  const std::string& path) {
  const Json* v = j.get(key);
  if (!v)
    throw ConfigError(source + ": hardware profile: missing field '" + path + key +
                          "' (a profile needs the header written by `twinfer calibrate`: "
                          "twinfer_version, model, gpu, kv_cache_dtype, created, params)",
                      2);
  return *v;
}

std::string str_field(const Json& j, const char* key, const std::string& source,
                      const std::string& path = "") {
  const Json& v = field(j, key, source, path);
  if (!v.is_string())
    throw ConfigError(source + ": hardware profile field '" + path + key +
                          "': expected a string, got " + v.dump(), 2);
  return v.as_string();
}

}  // namespace

ModelFingerprint ModelFingerprint::of(const ModelSpec& m) {
  ModelFingerprint f;
  f.name = m.name;
  f.num_layers = m.num_layers;
  f.hidden_size = m.hidden_size;
  f.num_heads = m.num_heads;
  f.num_kv_heads = m.num_kv_heads;
  f.head_dim = m.head_dim;
  f.vocab_size = m.vocab_size;
  f.intermediate_size = m.intermediate_size;
  return f;
}

Json ModelFingerprint::to_json() const {
  Json j = Json::object();
  j["name"] = name;
  for (const ShapeField& s : kShape) j[s.name] = this->*s.ptr;
  return j;
}

std::vector<std::string> ModelFingerprint::diff(const ModelFingerprint& run) const {
  std::vector<std::string> out;
  for (const ShapeField& s : kShape)
    if (this->*s.ptr != run.*s.ptr)
      out.push_back(std::string("model.") + s.name + ": profile " + std::to_string(this->*s.ptr) +
                    ", run " + std::to_string(run.*s.ptr) + " (" + run.name + ")");
  return out;
}

Json HwProfile::to_json() const {
  Json j = Json::object();
  j["twinfer_version"] = twinfer_version;
  j["model"] = model.to_json();
  j["gpu"] = gpu;
  if (!gpu_name.empty()) j["gpu_name"] = gpu_name;
  j["kv_cache_dtype"] = kv_cache_dtype;
  j["created"] = created;
  j["params"] = params.to_json();
  if (!measurements.is_null()) j["measurements"] = measurements;
  if (!fitted_on.is_null()) j["fitted_on"] = fitted_on;
  return j;
}

HwProfile HwProfile::from_json(const Json& j, const std::string& source) {
  if (!j.is_object())
    throw ConfigError(source + ": hardware profile: expected a JSON object", 2);
  HwProfile p;
  p.twinfer_version = str_field(j, "twinfer_version", source);
  const Json& m = field(j, "model", source, "");
  if (!m.is_object())
    throw ConfigError(source + ": hardware profile field 'model': expected an object, got " +
                          m.dump(), 2);
  p.model.name = m.get("name") ? str_field(m, "name", source, "model.") : "";
  for (const ShapeField& s : kShape) {
    const Json& v = field(m, s.name, source, "model.");
    if (!v.is_number() || !(v.as_number() >= 1) || v.as_number() != std::floor(v.as_number()))
      throw ConfigError(source + ": hardware profile field 'model." + s.name +
                            "': expected a positive integer, got " + v.dump(), 2);
    p.model.*s.ptr = v.as_int(s.name);
  }
  p.gpu = str_field(j, "gpu", source);
  if (j.get("gpu_name")) p.gpu_name = str_field(j, "gpu_name", source);
  p.kv_cache_dtype = str_field(j, "kv_cache_dtype", source);
  p.created = str_field(j, "created", source);
  const Json& params = field(j, "params", source, "");
  try {
    p.params.apply_json(params, source);
  } catch (const ConfigError& e) {
    throw ConfigError(e.what(), 2);
  }
  if (const Json* ms = j.get("measurements")) {
    if (!ms->is_array())
      throw ConfigError(source + ": hardware profile field 'measurements': expected an array", 2);
    p.measurements = *ms;
  }
  if (const Json* fo = j.get("fitted_on")) {
    if (!fo->is_array())
      throw ConfigError(source + ": hardware profile field 'fitted_on': expected an array", 2);
    p.fitted_on = *fo;
  }
  for (const auto& [key, value] : j.as_object()) {
    (void)value;
    if (key != "twinfer_version" && key != "model" && key != "gpu" && key != "gpu_name" &&
        key != "kv_cache_dtype" && key != "created" && key != "params" && key != "measurements" &&
        key != "fitted_on")
      throw ConfigError(source + ": hardware profile: unknown field '" + key +
                            "' (known: twinfer_version, model, gpu, gpu_name, kv_cache_dtype, "
                            "created, params, measurements, fitted_on)", 2);
  }
  return p;
}

HwProfile HwProfile::load(const std::string& path) {
  Json j;
  try {
    j = Json::parse_file(path);
  } catch (const JsonError& e) {
    throw ConfigError(std::string("--hw-profile: ") + e.what(), 2);
  }
  return from_json(j, path);
}

void HwProfile::save(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw ConfigError(path + ": cannot open for writing");
  f << to_json().dump(2) << "\n";
  if (!f.flush()) throw ConfigError(path + ": write failed");
}

std::string version_major_minor(const std::string& v) {
  const size_t a = v.find('.');
  if (a == std::string::npos) return v;
  const size_t b = v.find('.', a + 1);
  return b == std::string::npos ? v : v.substr(0, b);
}

std::string utc_timestamp_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::vector<std::string> profile_mismatches(const HwProfile& p, const ProfileTarget& t) {
  std::vector<std::string> out = p.model.diff(t.model);
  if (p.gpu != t.hardware)
    out.push_back("gpu: profile '" + p.gpu + "', run '" + t.hardware + "'");
  // Two devices can share a preset name (an SXM and a PCIe card run as one preset); where both
  // sides recorded the device, it must agree too.
  if (!p.gpu_name.empty() && !t.gpu_name.empty() && p.gpu_name != t.gpu_name)
    out.push_back("gpu_name: profile '" + p.gpu_name + "', run '" + t.gpu_name + "'");
  if (version_major_minor(p.twinfer_version) != version_major_minor(t.twinfer_version))
    out.push_back("twinfer_version: profile " + p.twinfer_version + ", run " + t.twinfer_version +
                  " (major.minor must match)");
  return out;
}

HwProfile load_compatible_profile(const std::string& path, const ProfileTarget& t) {
  HwProfile p = HwProfile::load(path);
  const std::vector<std::string> diff = profile_mismatches(p, t);
  if (!diff.empty()) {
    std::string msg = "--hw-profile " + path + " does not fit this run (" +
                      std::to_string(diff.size()) + " difference" + (diff.size() > 1 ? "s" : "") +
                      "):";
    for (const std::string& d : diff) msg += "\n  " + d;
    throw ConfigError(msg, 2);
  }
  return p;
}

}  // namespace twinfer
