// Per-request latency metrics, their aggregates, and summary.json's (de)serialisation.
// Definitions are spelled out in docs/trace-format.md ("Metric definitions").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/run_record.h"

namespace twinfer {

const char* seq_status_name(SeqStatus s) {
  switch (s) {
    case SeqStatus::waiting: return "waiting";
    case SeqStatus::running: return "running";
    case SeqStatus::swapped: return "swapped";
    case SeqStatus::finished: return "finished";
    case SeqStatus::failed: return "failed";
  }
  return "unknown";
}

const char* kv_event_name(KvEventType t) {
  switch (t) {
    case KvEventType::allocate: return "allocate";
    case KvEventType::share: return "share";
    case KvEventType::free: return "free";
    case KvEventType::cache: return "cache";
    case KvEventType::evict: return "evict";
    case KvEventType::cow: return "cow";
    case KvEventType::fork: return "fork";
    case KvEventType::swap_out: return "swap_out";
    case KvEventType::swap_in: return "swap_in";
  }
  return "unknown";
}

namespace {

// NaN sorts last so std::sort sees a strict weak order; callers interpolate over the NaN-free
// prefix only.
// numpy's default ("linear"): position q/100*(n-1) between the two closest ranks.
double interpolate_sorted(const double* v, size_t n, double q) {
  if (n == 0) return 0.0;
  q = std::clamp(q, 0.0, 100.0);
  double pos = q / 100.0 * static_cast<double>(n - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, n - 1);
  double frac = pos - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

size_t sort_finite_prefix(std::vector<double>& v) {
  // Partition NaNs out first so the sort itself uses plain `<` (inlined): ITL samples of a
  // trace run number in the millions and this sort dominated the simulator's profile.
  auto finite_end = std::partition(v.begin(), v.end(), [](double x) { return !std::isnan(x); });
  std::sort(v.begin(), finite_end);
  return static_cast<size_t>(finite_end - v.begin());
}

}  // namespace

double percentile(std::vector<double>& v, double q) {
  size_t n = sort_finite_prefix(v);
  return interpolate_sorted(v.data(), n, q);
}

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  size_t n = sort_finite_prefix(v);
  if (n == 0) return p;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += v[i];
  p.count = static_cast<int64_t>(n);
  p.mean = sum / static_cast<double>(n);
  p.p50 = interpolate_sorted(v.data(), n, 50);
  p.p90 = interpolate_sorted(v.data(), n, 90);
  p.p95 = interpolate_sorted(v.data(), n, 95);
  p.p99 = interpolate_sorted(v.data(), n, 99);
  return p;
}

Summary summarize(const RunRecord& r) {
  Summary s;
  s.backend = r.backend;
  s.requests = static_cast<int64_t>(r.requests.size());

  std::vector<double> ttft, tpot, e2e, queue;
  ttft.reserve(r.requests.size());
  e2e.reserve(r.requests.size());
  queue.reserve(r.requests.size());
  tpot.reserve(r.requests.size());
  constexpr double kMs = 1e3;
  // A difference of two stamps, or nothing when either is unset (NaN).
  auto push_diff = [](std::vector<double>& out, double later, double earlier, double scale) {
    double d = later - earlier;
    if (std::isfinite(d)) out.push_back(d * scale);
  };
  for (const RequestRecord& q : r.requests) {
    if (q.status == SeqStatus::failed) {
      ++s.failed;
      continue;
    }
    if (q.status != SeqStatus::finished) {
      ++s.unfinished;
      continue;
    }
    ++s.finished;
    s.input_tokens += q.prompt_len;
    s.output_tokens += q.output_len;
    const RequestTimes& t = q.times;
    push_diff(ttft, t.first_token, t.arrival, kMs);
    push_diff(e2e, t.finished, t.arrival, kMs);
    push_diff(queue, t.first_scheduled, t.arrival, kMs);
    if (q.output_len > 1)
      push_diff(tpot, t.finished, t.first_token, kMs / static_cast<double>(q.output_len - 1));
  }
  s.ttft_ms = percentiles(std::move(ttft));
  s.tpot_ms = percentiles(std::move(tpot));
  s.e2e_ms = percentiles(std::move(e2e));
  s.queue_ms = percentiles(std::move(queue));
  std::vector<double> itl(r.itl_s.size());
  for (size_t i = 0; i < r.itl_s.size(); ++i) itl[i] = static_cast<double>(r.itl_s[i]) * kMs;
  s.itl_ms = percentiles(std::move(itl));

  s.duration_s = r.duration_s;
  if (r.duration_s > 0) {
    s.req_per_s = static_cast<double>(s.finished) / r.duration_s;
    s.output_tok_per_s = static_cast<double>(s.output_tokens) / r.duration_s;
    s.total_tok_per_s = static_cast<double>(s.input_tokens + s.output_tokens) / r.duration_s;
  }
  s.preemptions = r.preemptions;
  s.kv_blocks_total = r.kv_blocks_total;
  s.kv_blocks_peak = r.kv_blocks_peak;
  s.kv_capacity_tokens = r.kv_capacity_tokens;
  s.prefix_cache_hit_rate =
      r.prefix_queried_blocks == 0
          ? 0.0
          : static_cast<double>(r.prefix_hit_blocks) / static_cast<double>(r.prefix_queried_blocks);
  s.steps = static_cast<int64_t>(r.steps.size());
  s.wall_s = r.wall_s;
  return s;
}

// ---- summary.json -------------------------------------------------------------------------
// Keys are the struct's field names; latency groups are objects {mean,p50,p90,p95,p99,count}.

namespace {

constexpr const char* kLatencyKeys[] = {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "queue_ms"};

Json percentiles_json(const Percentiles& p) {
  Json j = Json::object();
  j["mean"] = p.mean;
  j["p50"] = p.p50;
  j["p90"] = p.p90;
  j["p95"] = p.p95;
  j["p99"] = p.p99;
  j["count"] = p.count;
  return j;
}

// Field access for from_json: every key is required so a truncated or foreign file fails
// loudly, naming the file and the dotted field path.
class Reader {
 private:
  const Json& j_;
  const std::string& source_;
  std::string prefix_;

  std::string path(const char* key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  template <class F>
  auto wrap(F f) const {
    try {
      return f();
    } catch (const JsonError& e) {
      throw ConfigError(source_ + ": field " + e.what());
    }
  }

 public:
  Reader(const Json& j, const std::string& source, std::string prefix)
      : j_(j), source_(source), prefix_(std::move(prefix)) {
    if (!j_.is_object())
      throw ConfigError(source_ + ": " + (prefix_.empty() ? "summary" : prefix_) +
                        ": expected an object");
  }
  const Json& at(const char* key) const {
    const Json* v = j_.get(key);
    if (!v) throw ConfigError(source_ + ": missing field '" + path(key) + "'");
    return *v;
  }
  // null stands for a non-finite number (json_number_to writes NaN/inf as null).
  double num(const char* key) const {
    const Json& v = at(key);
    if (v.is_null()) return std::nan("");
    return wrap([&] { return v.as_number(path(key)); });
  }
  int64_t i64(const char* key) const {
    const Json& v = at(key);
    return wrap([&] { return v.as_int(path(key)); });
  }
  int32_t i32(const char* key) const {
    int64_t v = i64(key);
    if (v < INT32_MIN || v > INT32_MAX)
      throw ConfigError(source_ + ": field '" + path(key) + "': " + std::to_string(v) +
                        " does not fit a 32-bit integer");
    return static_cast<int32_t>(v);
  }
  std::string str(const char* key) const {
    const Json& v = at(key);
    return wrap([&] { return v.as_string(path(key)); });
  }
  Percentiles pct(const char* key) const {
    Reader g(at(key), source_, path(key));
    Percentiles p;
    p.mean = g.num("mean");
    p.p50 = g.num("p50");
    p.p90 = g.num("p90");
    p.p95 = g.num("p95");
    p.p99 = g.num("p99");
    p.count = g.i64("count");
    return p;
  }
};

}  // namespace

Json Summary::to_json() const {
  Json j = Json::object();
  j["backend"] = backend;
  j["requests"] = requests;
  j["finished"] = finished;
  j["failed"] = failed;
  j["unfinished"] = unfinished;
  j["duration_s"] = duration_s;
  j["req_per_s"] = req_per_s;
  j["output_tok_per_s"] = output_tok_per_s;
  j["total_tok_per_s"] = total_tok_per_s;
  j["input_tokens"] = input_tokens;
  j["output_tokens"] = output_tokens;
  const Percentiles* groups[] = {&ttft_ms, &tpot_ms, &itl_ms, &e2e_ms, &queue_ms};
  for (size_t i = 0; i < 5; ++i) j[kLatencyKeys[i]] = percentiles_json(*groups[i]);
  j["preemptions"] = preemptions;
  j["kv_blocks_total"] = kv_blocks_total;
  j["kv_blocks_peak"] = kv_blocks_peak;
  j["kv_capacity_tokens"] = kv_capacity_tokens;
  j["prefix_cache_hit_rate"] = prefix_cache_hit_rate;
  j["steps"] = steps;
  j["wall_s"] = wall_s;
  return j;
}

Summary Summary::from_json(const Json& j, const std::string& source) {
  Reader r(j, source, "");
  Summary s;
  s.backend = r.str("backend");
  s.requests = r.i64("requests");
  s.finished = r.i64("finished");
  s.failed = r.i64("failed");
  s.unfinished = r.i64("unfinished");
  s.duration_s = r.num("duration_s");
  s.req_per_s = r.num("req_per_s");
  s.output_tok_per_s = r.num("output_tok_per_s");
  s.total_tok_per_s = r.num("total_tok_per_s");
  s.input_tokens = r.i64("input_tokens");
  s.output_tokens = r.i64("output_tokens");
  Percentiles* groups[] = {&s.ttft_ms, &s.tpot_ms, &s.itl_ms, &s.e2e_ms, &s.queue_ms};
  for (size_t i = 0; i < 5; ++i) *groups[i] = r.pct(kLatencyKeys[i]);
  s.preemptions = r.i64("preemptions");
  s.kv_blocks_total = r.i32("kv_blocks_total");
  s.kv_blocks_peak = r.i32("kv_blocks_peak");
  s.kv_capacity_tokens = r.i64("kv_capacity_tokens");
  s.prefix_cache_hit_rate = r.num("prefix_cache_hit_rate");
  s.steps = r.i64("steps");
  s.wall_s = r.num("wall_s");
  if (s.finished + s.failed + s.unfinished != s.requests)
    throw ConfigError(source + ": finished + failed + unfinished (" +
                      std::to_string(s.finished + s.failed + s.unfinished) +
                      ") != requests (" + std::to_string(s.requests) + ")");
  return s;
}

}  // namespace twinfer
