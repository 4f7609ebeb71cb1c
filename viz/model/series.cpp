#include "viz/model/series.h"

#include <algorithm>
#include <cmath>

namespace twinfer::viz {

RunSeries build_series(const RunData& d, int bins) {
  RunSeries s;
  const size_t n = d.steps.size();
  s.t.resize(n);
  for (auto* v : {&s.running, &s.waiting, &s.swapped, &s.kv_used, &s.kv_cached}) v->resize(n);
  const float pool = d.kv_blocks_total > 0 ? static_cast<float>(d.kv_blocks_total) : 1.0f;
  for (size_t i = 0; i < n; ++i) {
    const StepRow& r = d.steps[i];
    s.t[i] = r.start;
    s.running[i] = static_cast<float>(r.running);
    s.waiting[i] = static_cast<float>(r.waiting);
    s.swapped[i] = static_cast<float>(r.swapped);
    s.kv_used[i] = static_cast<float>(r.kv_used) / pool;
    s.kv_cached[i] = static_cast<float>(r.kv_cached) / pool;
    s.running_max = std::max(s.running_max, s.running[i]);
    s.queue_max = std::max({s.queue_max, s.running[i], s.waiting[i], s.swapped[i]});
  }

  bins = std::max(1, bins);
  s.t0 = d.t_begin;
  s.bin_s = (d.t_end - d.t_begin) / bins;
  if (!(s.bin_s > 0)) s.bin_s = 1e-3;
  s.prefill_tok_s.assign(static_cast<size_t>(bins), 0.f);
  s.decode_tok_s.assign(static_cast<size_t>(bins), 0.f);
  s.finished_req_s.assign(static_cast<size_t>(bins), 0.f);
  auto bin_of = [&](double t) {
    const double b = std::floor((t - s.t0) / s.bin_s);
    return static_cast<size_t>(std::clamp(b, 0.0, static_cast<double>(bins - 1)));
  };
  const auto inv = static_cast<float>(1.0 / s.bin_s);
  // A step's tokens count at its end, when they are done.
  for (const StepRow& r : d.steps) {
    const size_t b = bin_of(r.start + r.duration);
    s.prefill_tok_s[b] += static_cast<float>(r.prefill_tokens) * inv;
    s.decode_tok_s[b] += static_cast<float>(r.decode_tokens) * inv;
  }
  for (size_t b = 0; b < static_cast<size_t>(bins); ++b)
    s.tok_s_max = std::max({s.tok_s_max, s.prefill_tok_s[b], s.decode_tok_s[b]});
  for (const RequestRow& q : d.requests) {
    if (q.status == SeqStatus::finished && std::isfinite(q.finished))
      s.finished_req_s[bin_of(q.finished)] += inv;
    auto add = [](std::vector<float>& v, double sec) {
      if (std::isfinite(sec)) v.push_back(static_cast<float>(sec * 1e3));
    };
    add(s.ttft_ms, q.ttft);
    add(s.tpot_ms, q.tpot);
    add(s.e2e_ms, q.e2e);
    add(s.queue_ms, q.queue);
  }
  for (auto* v : {&s.ttft_ms, &s.tpot_ms, &s.e2e_ms, &s.queue_ms}) std::sort(v->begin(), v->end());
  return s;
}

double sorted_quantile(const std::vector<float>& v, double q) {
  if (v.empty()) return std::nan("");
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  const double f = pos - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * f;
}

void column_ranges(const std::vector<double>& x, const std::vector<float>& v, double x0,
                   double x1, int px, std::vector<ColumnRange>& out) {
  out.assign(static_cast<size_t>(std::max(0, px)), ColumnRange{});
  if (px <= 0 || x.empty() || !(x1 > x0)) return;
  const double w = (x1 - x0) / px;
  // Sample in effect at x0: the last one at or before it.
  size_t i = static_cast<size_t>(std::upper_bound(x.begin(), x.end(), x0) - x.begin());
  for (int c = 0; c < px; ++c) {
    const double c1 = x0 + (c + 1) * w;
    ColumnRange r;
    if (i > 0) {  // the value carried into this column
      r.lo = r.hi = v[i - 1];
      r.valid = true;
    }
    for (; i < x.size() && x[i] < c1; ++i) {
      if (!r.valid) {
        r.lo = r.hi = v[i];
        r.valid = true;
      }
      r.lo = std::min(r.lo, v[i]);
      r.hi = std::max(r.hi, v[i]);
    }
    // Past the last sample the run is over: leave the columns empty.
    if (x0 + c * w > x.back()) r.valid = false;
    out[static_cast<size_t>(c)] = r;
  }
}

double CompareRow::rel() const { return a != 0 ? (b - a) / std::fabs(a) : std::nan(""); }

std::vector<CompareRow> compare_summaries(const Summary& a, const Summary& b) {
  std::vector<CompareRow> rows;
  auto add = [&](const char* name, double va, double vb, bool lower) {
    rows.push_back({name, va, vb, lower});
  };
  add("requests", static_cast<double>(a.requests), static_cast<double>(b.requests), false);
  add("finished", static_cast<double>(a.finished), static_cast<double>(b.finished), false);
  add("duration s", a.duration_s, b.duration_s, true);
  add("req/s", a.req_per_s, b.req_per_s, false);
  add("output tok/s", a.output_tok_per_s, b.output_tok_per_s, false);
  add("total tok/s", a.total_tok_per_s, b.total_tok_per_s, false);
  const std::pair<const char*, const Percentiles Summary::*> lat[] = {
      {"TTFT", &Summary::ttft_ms}, {"TPOT", &Summary::tpot_ms}, {"ITL", &Summary::itl_ms},
      {"e2e", &Summary::e2e_ms},   {"queue", &Summary::queue_ms}};
  for (const auto& [name, field] : lat) {
    const Percentiles& pa = a.*field;
    const Percentiles& pb = b.*field;
    const std::string n(name);
    rows.push_back({n + " mean ms", pa.mean, pb.mean, true});
    rows.push_back({n + " p50 ms", pa.p50, pb.p50, true});
    rows.push_back({n + " p99 ms", pa.p99, pb.p99, true});
  }
  add("preemptions", static_cast<double>(a.preemptions), static_cast<double>(b.preemptions), true);
  add("KV blocks total", a.kv_blocks_total, b.kv_blocks_total, false);
  add("KV blocks peak", a.kv_blocks_peak, b.kv_blocks_peak, true);
  add("prefix hit rate", a.prefix_cache_hit_rate, b.prefix_cache_hit_rate, false);
  add("steps", static_cast<double>(a.steps), static_cast<double>(b.steps), true);
  return rows;
}

}  // namespace twinfer::viz
