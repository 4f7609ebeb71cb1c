// Writes a run's standard files (formats: docs/trace-format.md). A long simulation has ~1e5-1e6
// steps and millions of KV block ids, so every file is formatted with std::to_chars (times as
// scaled integers) into one reused 4 MiB buffer that goes out with one fwrite per chunk.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/run_record.h"

namespace twinfer {

namespace {

[[noreturn]] void io_error(const std::string& path, const char* what, int err) {
  throw std::runtime_error(path + ": " + what + ": " + std::strerror(err));
}

// Streaming file writer with a raw cursor into a fixed 4 MiB buffer. Each append is one
// bounds check plus to_chars/memcpy; full chunks go out with one fwrite each. A fixed chunk
// (rather than the whole file in memory) keeps the buffer cache-resident and avoids faulting
// in ~100 MB of fresh pages per trace. The file is written as path.tmp and renamed into place
// on commit(), so a reader never sees a half-written file.
class Out {
 public:
  static constexpr size_t kChunk = size_t{4} << 20;
  static constexpr size_t kSlack = 512;  // the most one primitive append may write

  Out() : buf_(new char[kChunk + kSlack]), p_(buf_.get()), end_(buf_.get() + kChunk) {}
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;
  ~Out() { abandon(); }

  void open(const std::filesystem::path& path) {
    final_ = path.string();
    tmp_ = final_ + ".tmp";
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) io_error(tmp_, "cannot open for writing", errno);
    std::setvbuf(f_, nullptr, _IONBF, 0);  // chunks are already large; skip stdio's copy
    p_ = buf_.get();
  }
  void commit() {
    flush();
    std::FILE* f = f_;
    f_ = nullptr;
    if (std::fclose(f) != 0) {
      int err = errno;
      std::remove(tmp_.c_str());
      io_error(tmp_, "close failed", err);
    }
    if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
      int err = errno;
      std::remove(tmp_.c_str());
      io_error(final_, "cannot rename temporary file into place", err);
    }
  }

  Out& lit(std::string_view v) {
    while (!v.empty()) {
      size_t n = std::min(v.size(), kSlack);
      std::memcpy(room(), v.data(), n);
      p_ += n;
      v.remove_prefix(n);
    }
    return *this;
  }
  Out& ch(char c) {
    *room() = c;
    ++p_;
    return *this;
  }
  Out& i64(int64_t v) {
    char* p = room();
    p_ = std::to_chars(p, p + 24, v).ptr;
    return *this;
  }
  // v with exactly Dec decimals. Rounding v*10^Dec to an integer and printing that is several
  // times faster than a fixed-format double conversion; huge values take the slow path.
  template <int Dec>
  Out& fixed(double v) {
    static_assert(Dec >= 1 && Dec <= 9);
    constexpr int64_t kScale = [] {
      int64_t s = 1;
      for (int i = 0; i < Dec; ++i) s *= 10;
      return s;
    }();
    char* p = room();
    double x = v * static_cast<double>(kScale);
    if (!(std::fabs(x) < 9e18)) {
      p_ = std::to_chars(p, p + kSlack, v, std::chars_format::fixed, Dec).ptr;
      return *this;
    }
    int64_t q = std::llround(x);
    if (q < 0) {
      *p++ = '-';
      q = -q;
    }
    p = std::to_chars(p, p + 24, q / kScale).ptr;
    *p++ = '.';
    int64_t frac = q % kScale;
    for (int i = Dec - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    p_ = p + Dec;
    return *this;
  }
  // CSV time in seconds: microsecond resolution; unset (NaN) times are an empty field.
  Out& csv_time(double t) { return std::isfinite(t) ? fixed<6>(t) : *this; }
  // Trace timestamp: seconds on the run clock -> microseconds with nanosecond resolution,
  // trailing zeros dropped ("12000" rather than "12000.000"): a trace has millions of them.
  Out& us(double t_s) {
    fixed<3>(t_s * 1e6);
    while (p_[-1] == '0') --p_;  // stops at the '.' that fixed() always writes
    if (p_[-1] == '.') --p_;
    return *this;
  }
  // RFC 4180: quote only when needed, doubling embedded quotes.
  Out& csv_str(std::string_view v) {
    if (v.find_first_of(",\"\r\n") == std::string_view::npos) return lit(v);
    ch('"');
    for (char c : v) {
      if (c == '"') ch('"');
      ch(c);
    }
    return ch('"');
  }
  Out& json_str(std::string_view v) {
    tmp_str_.clear();
    json_escape_to(tmp_str_, v);
    return lit(tmp_str_);
  }

 private:
  std::unique_ptr<char[]> buf_;
  char* p_;
  char* end_;
  std::FILE* f_ = nullptr;
  std::string final_, tmp_, tmp_str_;

  // At least kSlack writable bytes at the cursor.
  char* room() {
    if (p_ >= end_) flush();
    return p_;
  }
  void flush() {
    size_t n = static_cast<size_t>(p_ - buf_.get());
    if (n && std::fwrite(buf_.get(), 1, n, f_) != n) {
      int err = errno;
      abandon();
      io_error(tmp_, "write failed", err);
    }
    p_ = buf_.get();
  }
  // Error path: drop the partial temporary file.
  void abandon() {
    if (!f_) return;
    std::fclose(f_);
    f_ = nullptr;
    std::remove(tmp_.c_str());
  }
};

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

void format_requests(Out& b, const RunRecord& r) {
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

void format_steps(Out& b, const RunRecord& r) {
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

// The cost model's view of each step (core/executor.h StepShape), kept out of steps.csv so that
// file's columns stay what its readers (twinfer-viz) expect; joined to it on `step`.
void format_step_shapes(Out& b, const RunRecord& r) {
  b.lit("step,num_seqs,prefill_tokens,decode_tokens,prefill_context,decode_context,"
        "prefill_pairs,decode_pairs,sample_rows,padding_seqs,padded_context,swapped_blocks,"
        "copied_blocks,block_size,decode_max_context\n");
  for (const StepRecord& st : r.steps) {
    const StepShape& s = st.shape;
    b.i64(st.step).ch(',').i64(s.num_seqs).ch(',').i64(s.prefill_tokens).ch(',');
    b.i64(s.decode_tokens).ch(',').i64(s.prefill_context).ch(',').i64(s.decode_context).ch(',');
    b.i64(s.prefill_pairs).ch(',').i64(s.decode_pairs).ch(',').i64(s.sample_rows).ch(',');
    b.i64(s.padding_seqs).ch(',').i64(s.padded_context).ch(',').i64(s.swapped_blocks).ch(',');
    b.i64(s.copied_blocks).ch(',').i64(s.block_size).ch(',').i64(s.decode_max_context).ch('\n');
  }
}

void format_kv_events(Out& b, const RunRecord& r) {
  const KvEventLog& kv = r.kv;
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

void trace_steps(Out& b, const RunRecord& r) {
  // Counters hold their value until the next sample, so a sample equal to the previous one is
  // dropped: long steady decode phases then cost one X event per step.
  int32_t last_q[3] = {-1, -1, -1}, last_kv[2] = {-1, -1};
  for (const StepRecord& s : r.steps) {
    if (!std::isfinite(s.start_s)) continue;
    double dur = std::isfinite(s.duration_s) ? s.duration_s : 0.0;
    b.lit(",\n{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"name\":\"step ").i64(s.step);
    b.lit("\",\"ts\":").us(s.start_s).lit(",\"dur\":").us(dur);
    b.lit(",\"args\":{\"prefill_tokens\":").i64(s.num_prefill_tokens);
    b.lit(",\"decode_tokens\":").i64(s.num_decode_tokens);
    // The rest of the step's columns live in steps.csv; only preemptions are worth a glance.
    if (s.preempted_end != s.preempted_begin)
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

void trace_span(Out& b, char ph, RequestId id, std::string_view name, double t) {
  b.lit(",\n{\"ph\":\"").ch(ph).lit("\",\"pid\":1,\"tid\":2,\"cat\":\"request\",\"id\":").i64(id);
  b.lit(",\"name\":\"").lit(name).lit("\",\"ts\":").us(t).ch('}');
}

void trace_request(Out& b, const RequestRecord& q) {
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

void format_trace(Out& b, const RunRecord& r) {
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

  Out out;
  auto emit = [&](const char* name, void (*format)(Out&, const RunRecord&)) {
    out.open(root / name);
    format(out, r);
    out.commit();
  };
  out.open(root / "config.json");
  out.lit(config.dump(2)).ch('\n');
  out.commit();
  out.open(root / "summary.json");
  out.lit(s.to_json().dump(2)).ch('\n');
  out.commit();
  emit("requests.csv", format_requests);
  emit("steps.csv", format_steps);
  emit("step_shapes.csv", format_step_shapes);
  emit("kv_events.csv", format_kv_events);
  emit("trace.json", format_trace);
}

}  // namespace twinfer
