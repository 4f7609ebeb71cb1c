// Workloads: production traces (Azure CSV, Mooncake JSONL) and synthetic arrivals.
#pragma once
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/request.h"

namespace twinfer {

// Azure LLM trace form: header `TIMESTAMP,ContextTokens,GeneratedTokens`, timestamps
// `YYYY-MM-DD HH:MM:SS[.fffffff]`; arrival = seconds since the first row.
// Malformed rows throw ConfigError "FILE:LINE: column NAME: bad value 'X' (expected ...)".
std::vector<RequestSpec> parse_azure_csv(std::istream& in, const std::string& source);
// Mooncake form: one JSON object per line with timestamp (ms), input_length, output_length,
// hash_ids (512-token prefix blocks).
std::vector<RequestSpec> parse_mooncake_jsonl(std::istream& in, const std::string& source);

// twinfer's own requests.csv (core/outputs.cpp; docs/trace-format.md) as a workload, selected
// with `--workload requests:PATH`: a run's exact arrivals and lengths. Columns are found by
// header name; required: id, status, prompt_len, output_len, target_len, arrival_s; optional:
// priority, hash_block_tokens, hash_ids (space-separated prefix-block ids, as Mooncake's).
// Output length: a finished request replays the tokens it produced (so EOS endings replay as
// they happened); failed and unfinished ones replay their target_len (else what they produced,
// at least 1), so the engine meets them as the run did. Sorted by (arrival, id), ids renumbered
// 0..n-1. Malformed input throws ConfigError "FILE:LINE: column NAME: bad value ...".
std::vector<RequestSpec> parse_requests_csv(std::istream& in, const std::string& source);
// Writes `reqs` in the form parse_requests_csv reads (status finished, output_len = target_len
// = the replayed length, hash columns when any request has prefix identities).
void write_requests_csv(std::ostream& out, const std::vector<RequestSpec>& reqs);
constexpr const char* kRequestsWorkloadPrefix = "requests:";

// Length distribution parsed from "fixed:N", "uniform:LO:HI", "lognormal:MEDIAN:SIGMA",
// "zipf:LO:HI:S". Throws ConfigError(exit 2) naming `flag` and the accepted forms.
struct LengthDist {
  enum class Kind { fixed, uniform, lognormal, zipf } kind = Kind::fixed;
  double a = 0, b = 0, c = 0;
  static LengthDist parse(const std::string& text, const std::string& flag);
};

// Builds the request list the config describes, sorted by arrival (ties by id), ids 0..n-1 in
// that order. Trace arrivals are scaled by time_scale, or redrawn when arrival is poisson/gamma
// (rate override) or set to 0 (offline). Deterministic for a seed.
std::vector<RequestSpec> load_workload(const WorkloadConfig& w, uint64_t seed);

}  // namespace twinfer
