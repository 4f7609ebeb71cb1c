// Derived fields of RunData: per-request latencies and phase spans (queued / prefill / decode,
// overlaid with preempted and swapped intervals recovered from steps.csv and kv_events.csv), the
// per-sequence KV event index, and the run's time range.
#include <algorithm>
#include <cmath>

#include "viz/model/run_data.h"

namespace twinfer::viz {

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::queued: return "queued";
    case Phase::prefill: return "prefill";
    case Phase::decode: return "decode";
    case Phase::preempted: return "preempted";
    case Phase::swapped: return "swapped";
    case Phase::count: break;
  }
  return "?";
}

namespace {

void derive_latencies(RequestRow& q) {
  double end = q.arrival;
  for (double v : {q.first_scheduled, q.first_token, q.last_token, q.finished})
    if (std::isfinite(v) && (!std::isfinite(end) || v > end)) end = v;
  q.end = end;
  if (q.status != SeqStatus::finished) return;  // as summary.json: finished requests only
  q.ttft = q.first_token - q.arrival;
  q.e2e = q.finished - q.arrival;
  q.queue = q.first_scheduled - q.arrival;
  if (q.output_len > 1) q.tpot = (q.finished - q.first_token) / (q.output_len - 1);
}

// CSR index of each request's KV events (rows of kv.events whose seq is the request).
void index_seq_events(RunData& d) {
  const size_t n = d.requests.size();
  d.seq_event_begin.assign(n + 1, 0);
  std::vector<int32_t> row(d.kv.events.size(), -1);
  for (size_t i = 0; i < d.kv.events.size(); ++i) {
    const int32_t r = d.row_of(d.kv.events[i].seq);
    row[i] = r;
    if (r >= 0) ++d.seq_event_begin[static_cast<size_t>(r) + 1];
  }
  for (size_t i = 0; i < n; ++i) d.seq_event_begin[i + 1] += d.seq_event_begin[i];
  d.seq_events.assign(d.seq_event_begin[n], 0);
  std::vector<uint32_t> fill(d.seq_event_begin.begin(), d.seq_event_begin.end() - 1);
  for (size_t i = 0; i < row.size(); ++i)
    if (row[i] >= 0) d.seq_events[fill[static_cast<size_t>(row[i])]++] = static_cast<uint32_t>(i);
}

// The interval a preemption at step `k` (starting at t) lasted, from the request's own KV
// events: swap_out in that step means swapped until the next swap_in; otherwise (recompute) it
// waits until blocks are allocated again. Without KV events the end is unknown: zero length.
PhaseSpan preemption_span(const RunData& d, int32_t row, int64_t k, double t, double end) {
  PhaseSpan s{t, t, Phase::preempted};
  if (d.seq_event_begin.empty()) return s;
  const uint32_t* b = d.seq_events.data() + d.seq_event_begin[static_cast<size_t>(row)];
  const uint32_t* e = d.seq_events.data() + d.seq_event_begin[static_cast<size_t>(row) + 1];
  // Events of the request are in file order, hence by step; skip those before step k.
  b = std::partition_point(b, e, [&](uint32_t i) { return d.kv.events[i].step < k; });
  bool swapped = false;
  for (const uint32_t* p = b; p != e; ++p) {
    const KvEvent& ev = d.kv.events[*p];
    if (ev.step == k && ev.type == KvEventType::swap_out) {
      swapped = true;
      s.phase = Phase::swapped;
      continue;
    }
    if (ev.step <= k) continue;
    const bool back = swapped ? ev.type == KvEventType::swap_in
                              : ev.type == KvEventType::allocate || ev.type == KvEventType::share;
    if (back) {
      s.t1 = ev.time;
      return s;
    }
  }
  // Never came back (unfinished at the end of the run) or no events: runs to the request's end.
  if (b != e) s.t1 = std::max(t, end);
  return s;
}

void derive_spans(RunData& d) {
  // Preemptions per request, in step order.
  std::vector<std::vector<std::pair<int64_t, double>>> pre(d.requests.size());
  for (const StepRow& s : d.steps)
    for (uint32_t i = s.preempted_begin; i < s.preempted_end; ++i) {
      const int32_t r = d.row_of(d.preempted_ids[i]);
      if (r >= 0) pre[static_cast<size_t>(r)].push_back({s.step, s.start});
    }
  d.spans.clear();
  d.spans.reserve(d.requests.size() * 3);
  for (size_t i = 0; i < d.requests.size(); ++i) {
    RequestRow& q = d.requests[i];
    q.span_begin = static_cast<uint32_t>(d.spans.size());
    if (std::isfinite(q.arrival)) {
      // Base phases, clamped to be non-decreasing (as trace.json does).
      const double end = q.end;
      const double ts = std::isfinite(q.first_scheduled) ? std::clamp(q.first_scheduled, q.arrival, end) : end;
      const double tt = std::isfinite(q.first_token) ? std::clamp(q.first_token, ts, end) : end;
      d.spans.push_back({q.arrival, ts, Phase::queued});
      if (std::isfinite(q.first_scheduled)) d.spans.push_back({ts, tt, Phase::prefill});
      if (std::isfinite(q.first_scheduled) && std::isfinite(q.first_token))
        d.spans.push_back({tt, end, Phase::decode});
      // Overlays, drawn after (on top of) the base phases.
      for (const auto& [k, t] : pre[i])
        d.spans.push_back(preemption_span(d, static_cast<int32_t>(i), k, t, end));
    }
    q.span_end = static_cast<uint32_t>(d.spans.size());
  }
}

}  // namespace

void derive(RunData& d) {
  d.t_begin = std::numeric_limits<double>::infinity();
  d.t_end = -std::numeric_limits<double>::infinity();
  for (RequestRow& q : d.requests) {
    derive_latencies(q);
    if (std::isfinite(q.arrival)) d.t_begin = std::min(d.t_begin, q.arrival);
    if (std::isfinite(q.end)) d.t_end = std::max(d.t_end, q.end);
  }
  if (!d.steps.empty()) {
    d.t_begin = std::min(d.t_begin, d.steps.front().start);
    d.t_end = std::max(d.t_end, d.steps.back().start + d.steps.back().duration);
  }
  if (!std::isfinite(d.t_begin) || !std::isfinite(d.t_end)) d.t_begin = d.t_end = 0;
  if (d.t_end <= d.t_begin) d.t_end = d.t_begin + 1e-3;  // a non-empty range to draw
  index_seq_events(d);
  derive_spans(d);
}

RunData run_from_record(const RunRecord& r, const Summary& s, const Json& config,
                        std::string label) {
  RunData d;
  d.label = std::move(label);
  d.config = config;
  d.summary = s;
  d.block_size = r.block_size;
  d.kv_blocks_total = r.kv_blocks_total;
  d.cpu_blocks_total = r.cpu_blocks_total;
  d.requests.reserve(r.requests.size());
  for (const RequestRecord& q : r.requests) {
    RequestRow w;
    w.id = q.id;
    w.status = q.status;
    w.priority = q.priority;
    w.prompt_len = q.prompt_len;
    w.output_len = q.output_len;
    w.target_len = q.target_len;
    w.arrival = q.times.arrival;
    w.first_scheduled = q.times.first_scheduled;
    w.first_token = q.times.first_token;
    w.last_token = q.times.last_token;
    w.finished = q.times.finished;
    w.num_preemptions = q.num_preemptions;
    w.prefix_hit_tokens = q.prefix_hit_tokens;
    w.error = q.error;
    d.index.emplace(w.id, static_cast<int32_t>(d.requests.size()));
    d.requests.push_back(std::move(w));
  }
  d.steps.reserve(r.steps.size());
  for (const StepRecord& t : r.steps) {
    StepRow w;
    w.step = t.step;
    w.start = t.start_s;
    w.duration = t.duration_s;
    w.prefill_tokens = t.num_prefill_tokens;
    w.decode_tokens = t.num_decode_tokens;
    w.prefill_seqs = t.num_prefill_seqs;
    w.decode_seqs = t.num_decode_seqs;
    w.running = t.num_running;
    w.waiting = t.num_waiting;
    w.swapped = t.num_swapped;
    w.kv_used = t.kv_blocks_used;
    w.kv_cached = t.kv_blocks_cached;
    w.preempted_begin = t.preempted_begin;
    w.preempted_end = t.preempted_end;
    d.steps.push_back(w);
  }
  d.preempted_ids = r.preempted_ids;
  d.kv.events = r.kv.events;
  d.kv.ids = r.kv.ids;
  d.has_kv_events = r.kv.enabled;
  derive(d);
  return d;
}

}  // namespace twinfer::viz
