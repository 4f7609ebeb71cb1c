// Writes a run's standard files (formats: docs/trace-format.md). A long simulation has ~1e5-1e6
// steps and millions of KV block ids, so every file is formatted into one reused byte buffer
// with std::to_chars (times as scaled integers) and written with a single fwrite.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/run_record.h"

namespace twinfer {

namespace {

// Growable output buffer with a raw cursor: appends are a bounds check plus memcpy/to_chars.
class Buf {
 public:
  void clear() { len_ = 0; }
  void reserve(size_t n) {
    if (s_.size() < n) s_.resize(n);
  }
  std::string_view view() const { return {s_.data(), len_}; }

  Buf& lit(std::string_view v) {
    std::memcpy(need(v.size()), v.data(), v.size());
    len_ += v.size();
    return *this;
  }
  Buf& ch(char c) {
    *need(1) = c;
    ++len_;
    return *this;
  }
  Buf& i64(int64_t v) {
    char* p = need(24);
    len_ = static_cast<size_t>(std::to_chars(p, p + 24, v).ptr - s_.data());
    return *this;
  }
  // v with exactly `dec` (<= 9) decimals. Rounding v*10^dec to an integer and printing that is
  // several times faster than a fixed-format double conversion; huge values take the slow path.
  Buf& fixed(double v, int dec) {
    static constexpr int64_t kPow10[] = {1,      10,      100,      1000,      10000,
                                         100000, 1000000, 10000000, 100000000, 1000000000};
    const int64_t scale = kPow10[dec];
    double x = v * static_cast<double>(scale);
    if (!(std::fabs(x) < 9e18)) {
      char* p = need(400);
      len_ = static_cast<size_t>(
          std::to_chars(p, p + 400, v, std::chars_format::fixed, dec).ptr - s_.data());
      return *this;
    }
    int64_t q = std::llround(x);
    char* p = need(48);
    if (q < 0) {
      *p++ = '-';
      q = -q;
    }
    p = std::to_chars(p, p + 24, q / scale).ptr;
    *p++ = '.';
    int64_t frac = q % scale;
    for (int i = dec - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    len_ = static_cast<size_t>(p + dec - s_.data());
    return *this;
  }
  // CSV time in seconds: microsecond resolution; unset (NaN) times are an empty field.
  Buf& csv_time(double t) { return std::isfinite(t) ? fixed(t, 6) : *this; }
  // Trace timestamp: seconds on the run clock -> microseconds with nanosecond resolution.
  Buf& us(double t_s) { return fixed(t_s * 1e6, 3); }
  // RFC 4180: quote only when needed, doubling embedded quotes.
  Buf& csv_str(std::string_view v) {
    if (v.find_first_of(",\"\r\n") == std::string_view::npos) return lit(v);
    ch('"');
    for (char c : v) {
      if (c == '"') ch('"');
      ch(c);
    }
    return ch('"');
  }
  Buf& json_str(std::string_view v) {
    tmp_.clear();
    json_escape_to(tmp_, v);
    return lit(tmp_);
  }

 private:
  std::string s_;
  size_t len_ = 0;
  std::string tmp_;

  char* need(size_t k) {
    if (len_ + k > s_.size()) s_.resize(std::max({s_.size() * 2, len_ + k, size_t{1} << 16}));
    return s_.data() + len_;
  }
};

[[noreturn]] void io_error(const std::string& path, const char* what, int err) {
  throw std::runtime_error(path + ": " + what + ": " + std::strerror(err));
}

// Writes into path.tmp and renames over path, so a reader never sees a half-written file.
void write_file(const std::filesystem::path& path, std::string_view data) {
  const std::string final_path = path.string();
  const std::string tmp = final_path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) io_error(tmp, "cannot open for writing", errno);
  std::setvbuf(f, nullptr, _IONBF, 0);  // the data is already one buffer; skip stdio's copy
  size_t n = data.empty() ? 0 : std::fwrite(data.data(), 1, data.size(), f);
  int err = errno;
  if (n != data.size()) {
    std::fclose(f);
    std::remove(tmp.c_str());
    io_error(tmp, "write failed", err);
  }
  if (std::fclose(f) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    io_error(tmp, "close failed", err);
  }
  if (std::rename(tmp.c_str(), final_path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    io_error(final_path, "cannot rename temporary file into place", err);
  }
}

// A record the engine filled inconsistently would otherwise write garbage; name the row.
void check_ranges(const RunRecord& r) {
  for (const StepRecord& st : r.steps)
    if (st.preempted_begin > st.preempted_end || st.preempted_end > r.preempted_ids.size())
      throw std::runtime_error("steps.csv: step " + std::to_string(st.step) +
                               ": preempted range [" + std::to_string(st.preempted_begin) + ", " +
                               std::to_string(st.preempted_end) + ") outside preempted_ids (" +
                               std::to_string(r.preempted_ids.size()) + ")");
  for (size_t i = 0; i < r.kv.events.size(); ++i) {
    const KvEvent& e = r.kv.events[i];
    if (e.b0 > e.b1 || e.b1 > e.b2 || e.b2 > r.kv.ids.size())
      throw std::runtime_error("kv_events.csv: event " + std::to_string(i) +
                               ": block offsets out of range of the id log (" +
                               std::to_string(r.kv.ids.size()) + ")");
  }
}

void format_requests(Buf& b, const RunRecord& r) {
  b.reserve(160 * r.requests.size() + 256);
  b.lit("id,status,priority,prompt_len,output_len,target_len,arrival_s,first_scheduled_s,"
        "first_token_s,last_token_s,finished_s,num_preemptions,prefix_hit_tokens,error\n");
  for (const RequestRecord& q : r.requests) {
    b.i64(q.id).ch(',').lit(seq_status_name(q.status)).ch(',').i64(q.priority).ch(',');
    b.i64(q.prompt_len).ch(',').i64(q.output_len).ch(',').i64(q.target_len).ch(',');
    b.csv_time(q.times.arrival).ch(',').csv_time(q.times.first_scheduled).ch(',');
    b.csv_time(q.times.first_token).ch(',').csv_time(q.times.last_token).ch(',');
    b.csv_time(q.times.finished).ch(',');
    b.i64(q.num_preemptions).ch(',').i64(q.prefix_hit_tokens).ch(',').csv_str(q.error).ch('\n');
  }
}

void format_steps(Buf& b, const RunRecord& r) {
  b.reserve(110 * r.steps.size() + 8 * r.preempted_ids.size() + 256);
  b.lit("step,start_s,duration_s,prefill_tokens,decode_tokens,prefill_seqs,decode_seqs,running,"
        "waiting,swapped,kv_blocks_used,kv_blocks_cached,preempted\n");
  for (const StepRecord& s : r.steps) {
    b.i64(s.step).ch(',').csv_time(s.start_s).ch(',').csv_time(s.duration_s).ch(',');
    b.i64(s.num_prefill_tokens).ch(',').i64(s.num_decode_tokens).ch(',');
    b.i64(s.num_prefill_seqs).ch(',').i64(s.num_decode_seqs).ch(',');
    b.i64(s.num_running).ch(',').i64(s.num_waiting).ch(',').i64(s.num_swapped).ch(',');
    b.i64(s.kv_blocks_used).ch(',').i64(s.kv_blocks_cached).ch(',');
    for (uint32_t i = s.preempted_begin; i < s.preempted_end; ++i) {
      if (i != s.preempted_begin) b.ch(';');
      b.i64(r.preempted_ids[i]);
    }
    b.ch('\n');
  }
}

void format_kv_events(Buf& b, const RunRecord& r) {
  const KvEventLog& kv = r.kv;
  b.reserve(48 * kv.events.size() + 7 * kv.ids.size() + 256);
  b.lit("time_s,step,type,seq,other,blocks,blocks2\n");
  auto ids = [&](uint32_t from, uint32_t to) {
    for (uint32_t i = from; i < to; ++i) {
      if (i != from) b.ch(' ');
      b.i64(kv.ids[i]);
    }
  };
  for (const KvEvent& e : kv.events) {
    b.csv_time(e.time).ch(',').i64(e.step).ch(',').lit(kv_event_name(e.type)).ch(',');
    b.i64(e.seq).ch(',').i64(e.other).ch(',');
    ids(e.b0, e.b1);
    b.ch(',');
    ids(e.b1, e.b2);
    b.ch('\n');
  }
}

// ---- trace.json -----------------------------------------------------------------------------
// pid 1 is the engine; tid 1 carries the step slices. Requests are nestable async spans keyed by
// (cat "request", id), which Perfetto draws as one track per request.

void trace_steps(Buf& b, const RunRecord& r) {
  // Counters hold their value until the next sample, so a sample equal to the previous one is
  // dropped: long steady decode phases then cost one X event per step.
  int32_t last_q[3] = {-1, -1, -1}, last_kv[2] = {-1, -1};
  for (const StepRecord& s : r.steps) {
    if (!std::isfinite(s.start_s)) continue;
    double dur = std::isfinite(s.duration_s) ? s.duration_s : 0.0;
    b.lit(",\n{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"cat\":\"step\",\"name\":\"step ").i64(s.step);
    b.lit("\",\"ts\":").us(s.start_s).lit(",\"dur\":").us(dur);
    b.lit(",\"args\":{\"prefill_tokens\":").i64(s.num_prefill_tokens);
    b.lit(",\"decode_tokens\":").i64(s.num_decode_tokens);
    b.lit(",\"prefill_seqs\":").i64(s.num_prefill_seqs);
    b.lit(",\"decode_seqs\":").i64(s.num_decode_seqs);
    b.lit(",\"preempted\":").i64(static_cast<int64_t>(s.preempted_end - s.preempted_begin));
    b.lit("}}");
    if (s.num_running != last_q[0] || s.num_waiting != last_q[1] || s.num_swapped != last_q[2]) {
      last_q[0] = s.num_running;
      last_q[1] = s.num_waiting;
      last_q[2] = s.num_swapped;
      b.lit(",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"queue\",\"ts\":").us(s.start_s);
      b.lit(",\"args\":{\"running\":").i64(s.num_running);
      b.lit(",\"waiting\":").i64(s.num_waiting);
      b.lit(",\"swapped\":").i64(s.num_swapped).lit("}}");
    }
    if (s.kv_blocks_used != last_kv[0] || s.kv_blocks_cached != last_kv[1]) {
      last_kv[0] = s.kv_blocks_used;
      last_kv[1] = s.kv_blocks_cached;
      b.lit(",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"kv_blocks\",\"ts\":").us(s.start_s + dur);
      b.lit(",\"args\":{\"used\":").i64(s.kv_blocks_used);
      b.lit(",\"cached\":").i64(s.kv_blocks_cached).lit("}}");
    }
  }
}

void trace_span(Buf& b, char ph, RequestId id, std::string_view name, double t) {
  b.lit(",\n{\"ph\":\"").ch(ph).lit("\",\"pid\":1,\"tid\":2,\"cat\":\"request\",\"id\":").i64(id);
  b.lit(",\"name\":\"").lit(name).lit("\",\"ts\":").us(t).ch('}');
}

void trace_request(Buf& b, const RequestRecord& q) {
  const RequestTimes& t = q.times;
  if (!std::isfinite(t.arrival)) return;  // never arrived: nothing to draw
  // Failed or unfinished requests end at the latest stamp they reached.
  double end = t.arrival;
  for (double v : {t.first_scheduled, t.first_token, t.last_token, t.finished})
    if (std::isfinite(v) && v > end) end = v;
  // Phase boundaries are clamped to be non-decreasing so the spans always nest.
  const bool scheduled = std::isfinite(t.first_scheduled);
  const bool first_token = std::isfinite(t.first_token);
  double t_sched = scheduled ? std::clamp(t.first_scheduled, t.arrival, end) : end;
  double t_tok = first_token ? std::clamp(t.first_token, t_sched, end) : end;

  b.lit(",\n{\"ph\":\"b\",\"pid\":1,\"tid\":2,\"cat\":\"request\",\"id\":").i64(q.id);
  b.lit(",\"name\":\"request ").i64(q.id).lit("\",\"ts\":").us(t.arrival);
  b.lit(",\"args\":{\"status\":\"").lit(seq_status_name(q.status));
  b.lit("\",\"prompt_len\":").i64(q.prompt_len).lit(",\"output_len\":").i64(q.output_len);
  b.lit(",\"preemptions\":").i64(q.num_preemptions);
  b.lit(",\"prefix_hit_tokens\":").i64(q.prefix_hit_tokens);
  if (!q.error.empty()) b.lit(",\"error\":").json_str(q.error);
  b.lit("}}");
  trace_span(b, 'b', q.id, "queued", t.arrival);
  trace_span(b, 'e', q.id, "queued", t_sched);
  if (scheduled) {
    trace_span(b, 'b', q.id, "prefill", t_sched);
    trace_span(b, 'e', q.id, "prefill", t_tok);
  }
  if (scheduled && first_token) {
    trace_span(b, 'b', q.id, "decode", t_tok);
    trace_span(b, 'e', q.id, "decode", end);
  }
  b.lit(",\n{\"ph\":\"e\",\"pid\":1,\"tid\":2,\"cat\":\"request\",\"id\":").i64(q.id);
  b.lit(",\"name\":\"request ").i64(q.id).lit("\",\"ts\":").us(end).ch('}');
}

void format_trace(Buf& b, const RunRecord& r) {
  b.reserve(230 * r.steps.size() + 900 * r.requests.size() + 1024);
  b.lit("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"format\":\"twinfer-trace/1\",\"backend\":");
  b.json_str(r.backend).lit("},\n\"traceEvents\":[");
  b.lit("\n{\"ph\":\"M\",\"pid\":1,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":");
  b.json_str("twinfer " + r.backend).lit("}}");
  b.lit(",\n{\"ph\":\"M\",\"pid\":1,\"tid\":1,\"name\":\"thread_name\","
        "\"args\":{\"name\":\"engine steps\"}}");
  b.lit(",\n{\"ph\":\"M\",\"pid\":1,\"tid\":2,\"name\":\"thread_name\","
        "\"args\":{\"name\":\"requests\"}}");
  trace_steps(b, r);
  for (const RequestRecord& q : r.requests) trace_request(b, q);
  b.lit("\n]}\n");
}

}  // namespace

void write_run_outputs(const std::string& dir, const Json& config, const RunRecord& r,
                       const Summary& s) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw std::runtime_error(dir + ": cannot create output directory: " + ec.message());
  check_ranges(r);

  Buf b;
  auto emit = [&](const char* name, void (*format)(Buf&, const RunRecord&)) {
    b.clear();
    format(b, r);
    write_file(root / name, b.view());
  };
  write_file(root / "config.json", config.dump(2) + "\n");
  write_file(root / "summary.json", s.to_json().dump(2) + "\n");
  emit("requests.csv", format_requests);
  emit("steps.csv", format_steps);
  emit("kv_events.csv", format_kv_events);
  emit("trace.json", format_trace);
}

}  // namespace twinfer
