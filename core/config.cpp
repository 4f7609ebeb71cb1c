#include "core/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/error.h"

namespace twinfer {

namespace {

using Kind = ConfigField::Kind;

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

[[noreturn]] void bad_value(const std::string& name, const std::string& value,
                            const std::string& expected) {
  throw ConfigError("--" + name + ": invalid value '" + value + "' (expected " + expected + ")", 2);
}

int64_t json_int(const Json& j, const std::string& name) {
  if (!j.is_number()) bad_value(name, j.dump(), "an integer");
  double d = j.as_number();
  if (std::floor(d) != d) bad_value(name, j.dump(), "an integer");
  return static_cast<int64_t>(d);
}
double json_double(const Json& j, const std::string& name) {
  if (!j.is_number()) bad_value(name, j.dump(), "a number");
  return j.as_number();
}
bool json_bool(const Json& j, const std::string& name) {
  if (!j.is_bool()) bad_value(name, j.dump(), "true or false");
  return j.as_bool();
}
std::string json_string(const Json& j, const std::string& name) {
  if (!j.is_string()) bad_value(name, j.dump(), "a string");
  return j.as_string();
}

// One line per knob below keeps the table readable; `member` maps a RunConfig to the field.
template <class M>
ConfigField make_field(std::string name, std::string section, Kind kind, std::string help,
                       M member, std::vector<std::string> choices = {}) {
  ConfigField f;
  f.name = name;
  f.section = section;
  f.kind = kind;
  f.help = std::move(help);
  f.choices = std::move(choices);
  f.get = [member](const RunConfig& c) { return Json(member(const_cast<RunConfig&>(c))); };
  f.set = [member, name, kind](RunConfig& c, const Json& j) {
    auto& ref = member(c);
    using T = std::decay_t<decltype(ref)>;
    if constexpr (std::is_same_v<T, bool>) {
      ref = json_bool(j, name);
    } else if constexpr (std::is_same_v<T, std::string>) {
      ref = json_string(j, name);
    } else if constexpr (std::is_floating_point_v<T>) {
      ref = json_double(j, name);
    } else {
      ref = static_cast<T>(json_int(j, name));
    }
    (void)kind;
  };
  return f;
}

std::vector<ConfigField> build_fields() {
  std::vector<ConfigField> f;
  auto E = [](auto p) { return [p](RunConfig& c) -> auto& { return c.engine.*p; }; };
  auto W = [](auto p) { return [p](RunConfig& c) -> auto& { return c.workload.*p; }; };
  auto T = [](auto p) { return [p](RunConfig& c) -> auto& { return c.*p; }; };
  // Top level.
  f.push_back(make_field("backend", "", Kind::String, "executor: sim (cost model), cpu (Eigen reference), cuda (GPU)", T(&RunConfig::backend), {"sim", "cpu", "cuda"}));
  f.push_back(make_field("model", "", Kind::String, "model preset name, HF config.json, or checkpoint folder", T(&RunConfig::model)));
  f.push_back(make_field("hardware", "", Kind::String, "GPU preset the simulator models (and the memory it plans for)", T(&RunConfig::hardware)));
  f.push_back(make_field("hw-profile", "", Kind::String, "calibration profile JSON from `twinfer calibrate` (sim)", T(&RunConfig::hw_profile)));
  f.push_back(make_field("dtype", "", Kind::String, "weight dtype", T(&RunConfig::dtype), {"bf16", "fp16", "fp32"}));
  f.push_back(make_field("seed", "", Kind::Int, "run seed (workload draws, sampling without a per-request seed)", T(&RunConfig::seed)));
  // Engine.
  f.push_back(make_field("block-size", "engine", Kind::Int, "tokens per KV-cache block", E(&EngineConfig::block_size), {"1", "8", "16", "32", "64", "128", "256"}));
  f.push_back(make_field("gpu-memory-utilization", "engine", Kind::Double, "fraction of GPU memory for weights, activations and KV cache, in (0, 1]", E(&EngineConfig::gpu_memory_utilization)));
  f.push_back(make_field("max-model-len", "engine", Kind::Int, "longest sequence (prompt + output); 0 = the model's context length", E(&EngineConfig::max_model_len)));
  f.push_back(make_field("max-num-seqs", "engine", Kind::Int, "most sequences running in one step", E(&EngineConfig::max_num_seqs)));
  f.push_back(make_field("max-num-batched-tokens", "engine", Kind::Int, "token budget per step; 0 = vLLM's default (2048 with chunked prefill, else max(max-model-len, 2048))", E(&EngineConfig::max_num_batched_tokens)));
  f.push_back(make_field("enable-chunked-prefill", "engine", Kind::Bool, "split prompts into chunks mixed with decodes (decodes first)", E(&EngineConfig::enable_chunked_prefill)));
  f.push_back(make_field("enable-prefix-caching", "engine", Kind::Bool, "share KV blocks of identical prompt prefixes", E(&EngineConfig::enable_prefix_caching)));
  f.push_back(make_field("kv-cache-dtype", "engine", Kind::String, "KV cache element type (auto = weight dtype)", E(&EngineConfig::kv_cache_dtype), {"auto", "bf16", "fp16", "fp8"}));
  f.push_back(make_field("enforce-eager", "engine", Kind::Bool, "disable CUDA graphs (one launch per kernel)", E(&EngineConfig::enforce_eager)));
  f.push_back(make_field("swap-space", "engine", Kind::Double, "GiB of host memory for swapped-out KV blocks", E(&EngineConfig::swap_space)));
  f.push_back(make_field("preemption-mode", "engine", Kind::String, "what happens to a preempted sequence's KV", E(&EngineConfig::preemption_mode), {"recompute", "swap"}));
  f.push_back(make_field("scheduling-policy", "engine", Kind::String, "waiting-queue order", E(&EngineConfig::scheduling_policy), {"fcfs", "priority", "sjf", "lpm", "lua:FILE"}));
  f.push_back(make_field("preemption-victim", "engine", Kind::String, "which running request is preempted when blocks run out", E(&EngineConfig::preemption_victim), {"last-arrived", "lowest-priority", "score", "lua:FILE"}));
  f.push_back(make_field("eviction-policy", "engine", Kind::String, "which unreferenced prefix-cache block is reused first", E(&EngineConfig::eviction_policy), {"lru", "lfu", "lua:FILE"}));
  f.push_back(make_field("batching", "engine", Kind::String, "continuous (iteration-level) or static (batch runs until all finish)", E(&EngineConfig::batching), {"continuous", "static"}));
  f.push_back(make_field("tensor-parallel-size", "engine", Kind::Int, "GPUs a model is split over", E(&EngineConfig::tensor_parallel_size)));
  f.push_back(make_field("activation-reserve", "engine", Kind::Double, "GiB held back for activations; negative = estimate from the model and token budget", E(&EngineConfig::activation_reserve)));
  f.push_back(make_field("num-gpu-blocks-override", "engine", Kind::Int, "fix the KV pool size in blocks (0 = plan from memory)", E(&EngineConfig::num_gpu_blocks_override)));
  // Workload.
  f.push_back(make_field("workload", "workload", Kind::String, "trace file (.csv Azure form, .jsonl Mooncake form) or 'synthetic'", W(&WorkloadConfig::workload)));
  f.push_back(make_field("arrival", "workload", Kind::String, "arrival times: the trace's, all at 0 (offline), or drawn at --rate", W(&WorkloadConfig::arrival), {"trace", "offline", "poisson", "gamma"}));
  f.push_back(make_field("rate", "workload", Kind::Double, "requests per second for poisson/gamma arrivals (overrides trace timestamps)", W(&WorkloadConfig::rate)));
  f.push_back(make_field("burstiness", "workload", Kind::Double, "gamma arrivals: shape (1 = Poisson, < 1 burstier)", W(&WorkloadConfig::burstiness)));
  f.push_back(make_field("time-scale", "workload", Kind::Double, "multiply trace arrival times (0.5 replays twice as fast)", W(&WorkloadConfig::time_scale)));
  f.push_back(make_field("max-requests", "workload", Kind::Int, "use only the first N requests (0 = all)", W(&WorkloadConfig::max_requests)));
  f.push_back(make_field("num-requests", "workload", Kind::Int, "synthetic: number of requests", W(&WorkloadConfig::num_requests)));
  f.push_back(make_field("input-len", "workload", Kind::String, "synthetic prompt lengths: fixed:N | uniform:LO:HI | lognormal:MEDIAN:SIGMA | zipf:LO:HI:S", W(&WorkloadConfig::input_len)));
  f.push_back(make_field("output-len", "workload", Kind::String, "synthetic output lengths, same forms as --input-len", W(&WorkloadConfig::output_len)));
  f.push_back(make_field("prefix-len", "workload", Kind::Int, "synthetic: tokens of prompt prefix shared by every request", W(&WorkloadConfig::prefix_len)));
  f.push_back(make_field("temperature", "workload", Kind::Double, "sampling temperature of every request (0 = greedy; real backends)", W(&WorkloadConfig::temperature)));
  f.push_back(make_field("top-p", "workload", Kind::Double, "nucleus sampling mass of every request, in (0, 1]", W(&WorkloadConfig::top_p)));
  f.push_back(make_field("top-k", "workload", Kind::Int, "top-k of every request (-1 = off)", W(&WorkloadConfig::top_k)));
  return f;
}

std::string normalize(std::string n) {
  std::replace(n.begin(), n.end(), '_', '-');
  if (n.rfind("--", 0) == 0) n = n.substr(2);
  return n;
}

void check_choice(const ConfigField& f, const std::string& v) {
  if (f.choices.empty()) return;
  for (const auto& c : f.choices) {
    if (c == v) return;
    if (c == "lua:FILE" && v.rfind("lua:", 0) == 0 && v.size() > 4) return;
  }
  bad_value(f.name, v, "one of " + join(f.choices));
}

}  // namespace

std::string twinfer_version() {
#ifdef TWINFER_VERSION
  return TWINFER_VERSION;
#else
  return "0";
#endif
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> fields = build_fields();
  return fields;
}

const ConfigField* find_config_field(const std::string& name) {
  const std::string n = normalize(name);
  for (const auto& f : config_fields())
    if (f.name == n) return &f;
  return nullptr;
}

void set_config_field(RunConfig& c, const std::string& name, const std::string& text) {
  const ConfigField* f = find_config_field(name);
  if (!f) throw ConfigError("unknown option '" + name + "'", 2);
  switch (f->kind) {
    case Kind::Bool: {
      if (text == "true" || text == "1" || text == "on" || text == "yes" || text.empty()) f->set(c, Json(true));
      else if (text == "false" || text == "0" || text == "off" || text == "no") f->set(c, Json(false));
      else bad_value(f->name, text, "true or false");
      break;
    }
    case Kind::Int: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size()) bad_value(f->name, text, "an integer");
      f->set(c, Json(v));
      break;
    }
    case Kind::Double: {
      double v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v))
        bad_value(f->name, text, "a number");
      f->set(c, Json(v));
      break;
    }
    case Kind::String:
      check_choice(*f, text);
      f->set(c, Json(text));
      break;
  }
}

int32_t RunConfig::effective_max_num_batched_tokens(int32_t max_model_len) const {
  if (engine.max_num_batched_tokens > 0) return engine.max_num_batched_tokens;
  if (engine.enable_chunked_prefill) return 2048;
  return std::max(max_model_len, 2048);
}

void RunConfig::validate() const {
  for (const auto& f : config_fields())
    if (f.kind == Kind::String) check_choice(f, f.get(*this).as_string());
  auto positive = [](const char* name, double v) {
    if (!(v > 0)) bad_value(name, Json(v).dump(), "a positive number");
  };
  auto at_least = [](const char* name, int64_t v, int64_t lo) {
    if (v < lo) bad_value(name, std::to_string(v), "an integer >= " + std::to_string(lo));
  };
  if (!(engine.gpu_memory_utilization > 0 && engine.gpu_memory_utilization <= 1))
    bad_value("gpu-memory-utilization", Json(engine.gpu_memory_utilization).dump(), "a fraction in (0, 1]");
  at_least("max-num-seqs", engine.max_num_seqs, 1);
  at_least("max-num-batched-tokens", engine.max_num_batched_tokens, 0);
  at_least("max-model-len", engine.max_model_len, 0);
  at_least("tensor-parallel-size", engine.tensor_parallel_size, 1);
  at_least("num-gpu-blocks-override", engine.num_gpu_blocks_override, 0);
  if (engine.swap_space < 0) bad_value("swap-space", Json(engine.swap_space).dump(), "GiB >= 0");
  positive("time-scale", workload.time_scale);
  positive("burstiness", workload.burstiness);
  if (workload.rate < 0) bad_value("rate", Json(workload.rate).dump(), "requests/s >= 0");
  at_least("max-requests", workload.max_requests, 0);
  at_least("num-requests", workload.num_requests, 1);
  at_least("prefix-len", workload.prefix_len, 0);
  if (!(workload.temperature >= 0)) bad_value("temperature", Json(workload.temperature).dump(), ">= 0");
  if (!(workload.top_p > 0 && workload.top_p <= 1)) bad_value("top-p", Json(workload.top_p).dump(), "in (0, 1]");
  if (workload.top_k == 0 || workload.top_k < -1) bad_value("top-k", std::to_string(workload.top_k), "-1 (off) or >= 1");
}

Json RunConfig::to_json() const {
  Json j = Json::object();
  for (const auto& f : config_fields()) {
    if (f.section.empty()) j[f.name] = f.get(*this);
    else j[f.section][f.name] = f.get(*this);
  }
  j["out"] = out;
  return j;
}

void RunConfig::apply_json(const Json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": expected a JSON object");
  auto apply = [&](const std::string& section, const Json& obj) {
    for (const auto& [k, v] : obj.as_object()) {
      if (section.empty() && (k == "engine" || k == "workload")) continue;
      // Files written by a run carry resolved descriptions beside the knobs; they are outputs.
      if (section.empty() && (k == "out" || k == "resolved" || k == "twinfer_version")) continue;
      const ConfigField* f = find_config_field(k);
      if (!f || f->section != section)
        throw ConfigError(source + ": unknown field '" + (section.empty() ? "" : section + ".") + k + "'");
      try {
        f->set(*this, v);
        if (f->kind == Kind::String) check_choice(*f, v.as_string());
      } catch (const ConfigError& e) {
        throw ConfigError(source + ": " + e.what(), e.exit_code());
      }
    }
  };
  apply("", j);
  if (const Json* e = j.get("engine")) apply("engine", *e);
  if (const Json* w = j.get("workload")) apply("workload", *w);
}

}  // namespace twinfer
