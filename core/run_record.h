// Everything a run produces, in memory: the engine fills a RunRecord, metrics.cpp summarizes it
// and outputs.cpp writes the standard files (docs/trace-format.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/json.h"
#include "core/kv_events.h"
#include "core/request.h"

namespace twinfer {

struct RequestRecord {
  RequestId id = 0;
  int32_t prompt_len = 0;
  int32_t output_len = 0;   // tokens generated
  int32_t target_len = -1;  // the workload's output length (-1 unknown)
  int32_t priority = 0;
  RequestTimes times;
  int32_t num_preemptions = 0;
  int32_t prefix_hit_tokens = 0;  // prompt tokens served from the prefix cache (first admission)
  SeqStatus status = SeqStatus::waiting;  // finished | failed | waiting/running (unfinished)
  std::string error;  // why it failed
  std::vector<int32_t> output_tokens;  // real backends only
};

struct StepRecord {
  int64_t step = 0;
  double start_s = 0.0;
  double duration_s = 0.0;
  int32_t num_prefill_tokens = 0;
  int32_t num_decode_tokens = 0;
  int32_t num_prefill_seqs = 0;
  int32_t num_decode_seqs = 0;
  int32_t num_running = 0;  // after scheduling
  int32_t num_waiting = 0;
  int32_t num_swapped = 0;
  int32_t kv_blocks_used = 0;    // referenced blocks after the step
  int32_t kv_blocks_cached = 0;  // unreferenced, evictable
  uint32_t preempted_begin = 0, preempted_end = 0;  // into RunRecord::preempted_ids
  StepShape shape;  // what the cost model reads (step_shapes.csv)
};

struct RunRecord {
  std::string backend;
  std::vector<RequestRecord> requests;  // in arrival order
  std::vector<StepRecord> steps;
  std::vector<RequestId> preempted_ids;
  std::vector<float> itl_s;  // every inter-token gap of every request, seconds
  KvEventLog kv;
  int32_t block_size = 16;
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_peak = 0;
  int32_t cpu_blocks_total = 0;
  int64_t kv_capacity_tokens = 0;
  uint64_t prefix_queried_blocks = 0;
  uint64_t prefix_hit_blocks = 0;
  int64_t preemptions = 0;
  double duration_s = 0.0;  // first arrival .. last completion
  double wall_s = 0.0;      // wall time the run took
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0;
  int64_t count = 0;
};

struct Summary {
  std::string backend;
  int64_t requests = 0, finished = 0, failed = 0, unfinished = 0;
  double duration_s = 0;
  double req_per_s = 0, output_tok_per_s = 0, total_tok_per_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  Percentiles ttft_ms, tpot_ms, itl_ms, e2e_ms, queue_ms;
  int64_t preemptions = 0;
  int32_t kv_blocks_total = 0, kv_blocks_peak = 0;
  int64_t kv_capacity_tokens = 0;
  double prefix_cache_hit_rate = 0;  // hit blocks / queried blocks
  int64_t steps = 0;
  double wall_s = 0;

  Json to_json() const;
  static Summary from_json(const Json& j, const std::string& source);
};

// Linear-interpolated percentile (numpy's default); q in [0, 100]. Sorts `v`.
double percentile(std::vector<double>& v, double q);
Percentiles percentiles(std::vector<double> v);
Summary summarize(const RunRecord& r);

// Writes config.json, summary.json, requests.csv, steps.csv, step_shapes.csv, kv_events.csv and
// trace.json into dir (created if missing). `config` is the fully resolved configuration.
// Throws std::runtime_error naming the file on I/O failure.
void write_run_outputs(const std::string& dir, const Json& config, const RunRecord& r,
                       const Summary& s);

}  // namespace twinfer
