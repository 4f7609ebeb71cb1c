// Requests as the workload describes them, and sequences as the engine tracks them.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace twinfer {

using RequestId = int64_t;
using BlockHash = uint64_t;

// vLLM's sampling parameters. Validation lives with the sampler (core/sampling.*).
struct SamplingParams {
  double temperature = 1.0;
  double top_p = 1.0;
  int32_t top_k = -1;  // -1 or 0: disabled
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  int64_t seed = -1;  // -1: none
  std::vector<int32_t> stop_token_ids;
  // Trace replay fixes output lengths, as vLLM's benchmarks do.
  bool ignore_eos = false;
};

// One request as produced by a workload (trace row, synthetic draw, Lua, or a prompt).
struct RequestSpec {
  RequestId id = 0;
  double arrival_s = 0.0;
  int32_t prompt_len = 0;
  // Output length the workload fixes (traces, synthetic); the engine stops there.
  // sampling.max_tokens mirrors it; -1 when unknown (real generation until EOS/max_tokens).
  int32_t output_len = -1;
  int32_t priority = 0;  // lower value = more important, as in vLLM
  std::vector<int32_t> prompt_tokens;  // empty in simulation-only workloads
  // Prefix identities of `hash_block_tokens`-token prompt blocks (Mooncake's hash_ids); equal
  // values mean the same prefix content. Empty when the workload has none.
  std::vector<BlockHash> hash_ids;
  int32_t hash_block_tokens = 0;
  SamplingParams sampling;
};

enum class SeqStatus : uint8_t { waiting, running, swapped, finished, failed };

const char* seq_status_name(SeqStatus s);

// Lifecycle timestamps (seconds on the run's clock). NaN until the event happens.
struct RequestTimes {
  static constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();
  double arrival = kUnset;
  double first_scheduled = kUnset;
  double first_token = kUnset;
  double last_token = kUnset;
  double finished = kUnset;
};

}  // namespace twinfer
