// The UI-free trace model: one run folder (docs/trace-format.md) in memory, plus what the panels
// derive from it once at load (per-request phase spans, per-sequence KV event index). No ImGui
// here: tests and tools link this library alone.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "core/kv_events.h"
#include "core/run_record.h"

namespace twinfer::viz {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What a request is doing over an interval, as the timeline draws it.
enum class Phase : uint8_t { queued, prefill, decode, preempted, swapped, count };
const char* phase_name(Phase p);

struct PhaseSpan {
  double t0 = 0, t1 = 0;
  Phase phase = Phase::queued;
};

// One row of requests.csv plus derived latencies (NaN where not defined, as in summary.json).
struct RequestRow {
  RequestId id = 0;
  SeqStatus status = SeqStatus::waiting;
  int32_t priority = 0;
  int32_t prompt_len = 0, output_len = 0, target_len = -1;
  double arrival = kNaN, first_scheduled = kNaN, first_token = kNaN, last_token = kNaN,
         finished = kNaN;
  int32_t num_preemptions = 0;
  int32_t prefix_hit_tokens = 0;
  std::string error;
  // Derived, seconds.
  double ttft = kNaN, tpot = kNaN, e2e = kNaN, queue = kNaN;
  double end = kNaN;  // last known time (finished, else the latest timestamp)
  uint32_t span_begin = 0, span_end = 0;  // into RunData::spans, ordered by t0
};

struct StepRow {
  int64_t step = 0;
  double start = 0, duration = 0;
  int32_t prefill_tokens = 0, decode_tokens = 0;
  int32_t prefill_seqs = 0, decode_seqs = 0;
  int32_t running = 0, waiting = 0, swapped = 0;
  int32_t kv_used = 0, kv_cached = 0;
  uint32_t preempted_begin = 0, preempted_end = 0;  // into RunData::preempted_ids
};

struct RunData {
  std::string dir;    // folder it came from ("" for an in-memory run)
  std::string label;  // short name for tabs and legends
  Json config;        // config.json (null when absent)
  Summary summary;
  int32_t block_size = 16;
  int32_t kv_blocks_total = 0;   // GPU blocks
  int32_t cpu_blocks_total = 0;  // host swap blocks (config, else the largest id seen + 1)
  std::vector<RequestRow> requests;  // arrival order
  std::vector<StepRow> steps;
  std::vector<RequestId> preempted_ids;
  KvEventLog kv;  // events in file order; ids holds both block lists
  bool has_kv_events = false;  // kv_events.csv present (it may still be empty)
  std::vector<PhaseSpan> spans;
  // KV events of each request, in order: seq_events[seq_event_begin[i] .. seq_event_begin[i+1])
  // are indices into kv.events for requests[i].
  std::vector<uint32_t> seq_event_begin, seq_events;
  std::unordered_map<RequestId, int32_t> index;  // id -> row in requests
  double t_begin = 0, t_end = 0;  // first arrival .. latest timestamp or step end
  std::vector<std::string> warnings;  // non-fatal problems (missing optional file, mismatches)

  int32_t row_of(RequestId id) const {
    auto it = index.find(id);
    return it == index.end() ? -1 : it->second;
  }
};

// Loads a run folder. Required: summary.json, requests.csv, steps.csv; optional: config.json,
// kv_events.csv (the KV map is then unavailable). Throws ConfigError with one clear message
// naming the folder, file, line and field for a missing, partial or corrupt folder.
RunData load_run(const std::string& dir);

// Builds the model from an in-memory record (the live simulator) without touching files.
RunData run_from_record(const RunRecord& r, const Summary& s, const Json& config,
                        std::string label);

// Fills the derived fields (latencies, ends, phase spans, per-sequence event index, time range)
// from the loaded rows. load_run and run_from_record call it; exposed for tests.
void derive(RunData& d);

}  // namespace twinfer::viz
