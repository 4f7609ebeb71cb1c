// Reading a run folder into RunData. Every failure is one ConfigError naming the folder, the file
// and (for CSVs) the line and column, so the app can show it in the window and on stderr.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "viz/model/csv_reader.h"
#include "viz/model/run_data.h"

namespace twinfer::viz {

namespace fs = std::filesystem;

namespace {

SeqStatus parse_status(const CsvReader& r, int col) {
  static constexpr std::pair<std::string_view, SeqStatus> kNames[] = {
      {"finished", SeqStatus::finished}, {"failed", SeqStatus::failed},
      {"waiting", SeqStatus::waiting},   {"running", SeqStatus::running},
      {"swapped", SeqStatus::swapped}};
  for (const auto& [name, s] : kNames)
    if (r.raw(col) == name) return s;
  r.fail(col, "finished, failed, waiting, running or swapped");
}

KvEventType parse_kv_type(const CsvReader& r, int col) {
  // kv_event_name is the writer's spelling; matching against it keeps the two in step.
  for (int t = 0; t <= static_cast<int>(KvEventType::swap_in); ++t) {
    auto k = static_cast<KvEventType>(t);
    if (r.raw(col) == kv_event_name(k)) return k;
  }
  r.fail(col, "allocate, share, free, cache, evict, cow, fork, swap_out or swap_in");
}

void read_requests(RunData& d, const std::string& path) {
  const std::string text = read_file_bytes(path);
  CsvReader r(text, path);
  r.expect_header({"id", "status", "priority", "prompt_len", "output_len", "target_len",
                   "arrival_s", "first_scheduled_s", "first_token_s", "last_token_s",
                   "finished_s", "num_preemptions", "prefix_hit_tokens", "error"});
  while (r.next()) {
    RequestRow q;
    q.id = r.i64(0);
    q.status = parse_status(r, 1);
    q.priority = r.i32(2);
    q.prompt_len = r.i32(3);
    q.output_len = r.i32(4);
    q.target_len = r.i32(5);
    q.arrival = r.time(6);
    q.first_scheduled = r.time(7);
    q.first_token = r.time(8);
    q.last_token = r.time(9);
    q.finished = r.time(10);
    q.num_preemptions = r.i32(11);
    q.prefix_hit_tokens = r.i32(12);
    q.error = r.str(13);
    if (q.prompt_len < 0) r.fail(3, "a token count >= 0");
    if (q.output_len < 0) r.fail(4, "a token count >= 0");
    if (q.num_preemptions < 0) r.fail(11, "a count >= 0");
    if (!d.index.emplace(q.id, static_cast<int32_t>(d.requests.size())).second)
      r.fail(0, "a request id not seen before");
    d.requests.push_back(std::move(q));
  }
}

void read_steps(RunData& d, const std::string& path) {
  const std::string text = read_file_bytes(path);
  CsvReader r(text, path);
  r.expect_header({"step", "start_s", "duration_s", "prefill_tokens", "decode_tokens",
                   "prefill_seqs", "decode_seqs", "running", "waiting", "swapped",
                   "kv_blocks_used", "kv_blocks_cached", "preempted"});
  while (r.next()) {
    StepRow s;
    s.step = r.i64(0);
    s.start = r.time(1);
    s.duration = r.time(2);
    if (std::isnan(s.start)) r.fail(1, "a start time in seconds");
    if (std::isnan(s.duration) || s.duration < 0) r.fail(2, "a duration >= 0 in seconds");
    if (!d.steps.empty() && s.start < d.steps.back().start)
      r.fail(1, "a start time not before the previous step's");
    int32_t* ints[] = {&s.prefill_tokens, &s.decode_tokens, &s.prefill_seqs, &s.decode_seqs,
                       &s.running,        &s.waiting,       &s.swapped,      &s.kv_used,
                       &s.kv_cached};
    for (int c = 0; c < 9; ++c) {
      *ints[c] = r.i32(3 + c);
      // The KV counters are checked against the replayed events instead (KvReplay reports
      // disagreements), so a wrong counter does not hide the rest of the run.
      if (*ints[c] < 0 && c < 7) r.fail(3 + c, "a count >= 0");
    }
    s.preempted_begin = static_cast<uint32_t>(d.preempted_ids.size());
    r.int_list(12, ';', d.preempted_ids);
    s.preempted_end = static_cast<uint32_t>(d.preempted_ids.size());
    d.steps.push_back(s);
  }
}

void read_kv_events(RunData& d, const std::string& path) {
  const std::string text = read_file_bytes(path);
  CsvReader r(text, path);
  r.expect_header({"time_s", "step", "type", "seq", "other", "blocks", "blocks2"});
  // ~40 bytes a row and ~2 ids a row: reserving from the size avoids regrowing huge vectors.
  d.kv.events.reserve(text.size() / 40);
  d.kv.ids.reserve(text.size() / 10);
  const auto gpu_limit = static_cast<int64_t>(d.kv_blocks_total);
  int64_t max_host = -1;
  while (r.next()) {
    KvEvent e;
    e.time = r.time(0);
    if (std::isnan(e.time)) r.fail(0, "a time in seconds");
    if (!d.kv.events.empty() && e.time < d.kv.events.back().time)
      r.fail(0, "a time not before the previous event's");
    e.step = r.i64(1);
    e.type = parse_kv_type(r, 2);
    e.seq = r.i64(3);
    e.other = r.i64(4);
    e.b0 = static_cast<uint32_t>(d.kv.ids.size());
    r.int_list(5, ' ', d.kv.ids);
    e.b1 = static_cast<uint32_t>(d.kv.ids.size());
    r.int_list(6, ' ', d.kv.ids);
    e.b2 = static_cast<uint32_t>(d.kv.ids.size());
    for (uint32_t i = e.b0; i < e.b1; ++i)
      if (d.kv.ids[i] < 0 || d.kv.ids[i] >= gpu_limit)
        r.fail(5, "GPU block ids in [0, " + std::to_string(gpu_limit) +
                      ") (summary.json kv_blocks_total)");
    const bool host2 = e.type == KvEventType::swap_out || e.type == KvEventType::swap_in;
    for (uint32_t i = e.b1; i < e.b2; ++i) {
      const int64_t b = d.kv.ids[i];
      if (b < 0 || (!host2 && b >= gpu_limit))
        r.fail(6, host2 ? "host block ids >= 0" : "GPU block ids below kv_blocks_total");
      if (host2) max_host = std::max(max_host, b);
    }
    if ((e.type == KvEventType::cow || host2) && e.b2 - e.b1 != e.b1 - e.b0)
      r.fail(6, "as many ids as the blocks column (pairs)");
    d.kv.events.push_back(e);
  }
  d.cpu_blocks_total = std::max<int32_t>(d.cpu_blocks_total, static_cast<int32_t>(max_host + 1));
}

// config.json is optional; when present it gives the block size and the host pool size.
void read_config(RunData& d, const std::string& path) {
  d.config = Json::parse_file(path);
  if (!d.config.is_object()) throw ConfigError(path + ": expected a JSON object");
  auto int_at = [&](std::initializer_list<const char*> keys) -> const Json* {
    const Json* j = &d.config;
    for (const char* k : keys) {
      j = j->is_object() ? j->get(k) : nullptr;
      if (!j) return nullptr;
    }
    return j->is_number() ? j : nullptr;
  };
  if (const Json* b = int_at({"engine", "block-size"})) d.block_size = static_cast<int32_t>(b->as_int());
  if (const Json* c = int_at({"resolved", "memory", "num_cpu_blocks"}))
    d.cpu_blocks_total = static_cast<int32_t>(c->as_int());
  if (d.block_size <= 0) throw ConfigError(path + ": engine.block-size must be positive");
}

}  // namespace

RunData load_run(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw ConfigError(dir + ": no such run folder");
  if (!fs::is_directory(dir, ec)) throw ConfigError(dir + ": not a folder (expected a run folder written by `twinfer run --out`)");
  const fs::path root(dir);
  auto need = [&](const char* name) {
    const fs::path p = root / name;
    if (fs::exists(p, ec)) return p.string();
    std::string why = dir + ": missing " + name;
    if (fs::exists(root / (std::string(name) + ".tmp"), ec))
      why += " (" + std::string(name) + ".tmp is there: the run stopped while writing it)";
    else
      why += " (not a complete run folder written by `twinfer run --out`)";
    throw ConfigError(why);
  };

  RunData d;
  d.dir = dir;
  d.label = root.filename().empty() ? root.parent_path().filename().string() : root.filename().string();
  const std::string summary = need("summary.json");
  const std::string requests = need("requests.csv");
  const std::string steps = need("steps.csv");
  try {
    d.summary = Summary::from_json(Json::parse_file(summary), summary);
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  d.kv_blocks_total = d.summary.kv_blocks_total;
  if (d.kv_blocks_total < 0) throw ConfigError(summary + ": kv_blocks_total must be >= 0");
  if (fs::exists(root / "config.json", ec)) {
    try {
      read_config(d, (root / "config.json").string());
    } catch (const JsonError& e) {
      throw ConfigError(e.what());
    }
  } else {
    d.warnings.push_back(dir + ": no config.json; assuming block size 16");
  }
  read_requests(d, requests);
  read_steps(d, steps);
  if (fs::exists(root / "kv_events.csv", ec)) {
    read_kv_events(d, (root / "kv_events.csv").string());
    d.has_kv_events = true;
    if (d.kv.events.empty() && !d.steps.empty())
      d.warnings.push_back(dir + ": kv_events.csv has no events (run with --no-kv-events?)");
  } else {
    d.warnings.push_back(dir + ": no kv_events.csv; the KV block map is unavailable");
  }
  if (static_cast<int64_t>(d.requests.size()) != d.summary.requests)
    d.warnings.push_back(requests + ": " + std::to_string(d.requests.size()) +
                         " rows but summary.json says " + std::to_string(d.summary.requests) +
                         " requests");
  derive(d);
  return d;
}

}  // namespace twinfer::viz
