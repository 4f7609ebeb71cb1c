// Typed configuration of a run. One flat table of fields (config_fields()) gives every knob its
// flag name (vLLM's vocabulary), default, help and allowed values; the CLI, config.json and the
// Lua experiment API are all built from that table, so the three can never disagree.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"

namespace twinfer {

struct EngineConfig {
  int32_t block_size = 16;
  double gpu_memory_utilization = 0.90;
  int32_t max_model_len = 0;           // 0: the model's max_position_embeddings
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 0;  // 0: vLLM's default for the prefill mode (resolved())
  bool enable_chunked_prefill = false;
  bool enable_prefix_caching = false;
  std::string kv_cache_dtype = "auto";  // auto | bf16 | fp16 | fp8
  bool enforce_eager = false;
  double swap_space = 4.0;  // GiB of host memory per GPU for swapped-out KV blocks
  std::string preemption_mode = "recompute";  // recompute | swap
  std::string scheduling_policy = "fcfs";     // fcfs | priority | sjf | lpm | lua:FILE
  std::string preemption_victim = "last-arrived";  // last-arrived | lowest-priority | score | lua:FILE
  std::string eviction_policy = "lru";        // lru | lfu | lua:FILE
  std::string batching = "continuous";        // continuous | static
  int32_t tensor_parallel_size = 1;
  // Memory held back for activations, GiB; < 0 estimates it from the model and token budget.
  double activation_reserve = -1.0;
  int32_t num_gpu_blocks_override = 0;  // > 0 fixes the KV pool size (tests, experiments)
};

struct WorkloadConfig {
  // A trace file (.csv: Azure form; .jsonl: Mooncake form) or "synthetic".
  std::string workload = "synthetic";
  // trace: the file's timestamps; offline: everything at t=0; poisson | gamma: drawn at `rate`.
  std::string arrival = "trace";
  double rate = 0.0;         // requests/s for poisson/gamma (required for synthetic)
  double burstiness = 1.0;   // gamma shape's inverse CV^2: < 1 burstier than Poisson
  double time_scale = 1.0;   // multiply trace inter-arrival times (0.5 = twice as fast)
  int64_t max_requests = 0;  // 0: all rows of a trace; required for synthetic
  int64_t num_requests = 1000;     // synthetic
  std::string input_len = "fixed:512";   // fixed:N | uniform:LO:HI | lognormal:MEDIAN:SIGMA | zipf:LO:HI:S
  std::string output_len = "fixed:128";
  int32_t prefix_len = 0;  // synthetic: tokens of a prompt prefix shared by all requests
  // Sampling of every request (real backends; vLLM's benchmarks default to 1.0 / 1.0 / off).
  double temperature = 1.0;
  double top_p = 1.0;
  int32_t top_k = -1;
};

struct RunConfig {
  std::string backend = "sim";  // sim | cpu | cuda
  std::string model = "llama-3-8b";
  std::string hardware = "h100-sxm";
  std::string hw_profile;  // calibration profile JSON (sim), optional
  std::string dtype = "bf16";  // weight dtype
  uint64_t seed = 0;
  std::string out;  // output folder; empty writes nothing
  EngineConfig engine;
  WorkloadConfig workload;

  // Fills derived defaults (max_num_batched_tokens) and checks ranges and enum values.
  // Throws ConfigError(exit 2) naming the flag and the allowed values.
  void validate() const;
  // Effective token budget per step: the explicit value, else vLLM's default (2048 with chunked
  // prefill; max(max_model_len, 2048) without, so a whole prompt always fits one step).
  int32_t effective_max_num_batched_tokens(int32_t max_model_len) const;

  Json to_json() const;
  // Applies the keys present in j (same nesting as to_json); unknown keys are errors.
  void apply_json(const Json& j, const std::string& source);
};

// One knob of RunConfig. `section` is "" (top level), "engine" or "workload".
struct ConfigField {
  enum class Kind { Int, Double, Bool, String };
  std::string name;     // flag name without dashes: "max-num-seqs"
  std::string section;
  Kind kind;
  std::string help;     // includes allowed values where there is a closed set
  std::vector<std::string> choices;  // empty: any value; "lua:" prefix allowed where listed
  std::function<Json(const RunConfig&)> get;
  std::function<void(RunConfig&, const Json&)> set;  // throws ConfigError on a wrong type
};

const std::vector<ConfigField>& config_fields();
const ConfigField* find_config_field(const std::string& name);  // accepts '-' or '_'
// Sets one knob from text (CLI, key=value). Throws ConfigError(exit 2) naming the flag.
void set_config_field(RunConfig& c, const std::string& name, const std::string& text);

std::string twinfer_version();

}  // namespace twinfer
