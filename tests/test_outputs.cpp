#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

#include "core/run_record.h"

using namespace twinfer;
namespace fs = std::filesystem;

namespace {

constexpr double U = RequestTimes::kUnset;

// A per-test scratch directory, removed on scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() /
             ("twinfer_outputs_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

RequestRecord req(RequestId id, SeqStatus st, int32_t prompt, int32_t out, double arrival,
                  double sched, double first_tok, double last_tok, double fin) {
  RequestRecord q;
  q.id = id;
  q.status = st;
  q.prompt_len = prompt;
  q.output_len = out;
  q.target_len = out;
  q.times = {arrival, sched, first_tok, last_tok, fin};
  return q;
}

// Four requests: finished, failed before scheduling (error with CSV-special characters),
// still running, and a finished one that was preempted; three steps; a few KV events.
RunRecord sample_record() {
  RunRecord r;
  r.backend = "sim";
  r.requests.push_back(req(10, SeqStatus::finished, 32, 4, 0.0, 0.001, 0.0105, 0.04, 0.04));
  RequestRecord failed = req(11, SeqStatus::failed, 9000, 0, 0.002, U, U, U, 0.003);
  failed.target_len = -1;
  failed.error = "prompt too long, \"9000\" > 4096";
  r.requests.push_back(failed);
  r.requests.push_back(req(12, SeqStatus::running, 16, 2, 0.005, 0.02, 0.03, 0.035, U));
  RequestRecord pre = req(13, SeqStatus::finished, 64, 3, 12.3456789, 12.5, 12.75, 13.0, 13.0);
  pre.num_preemptions = 1;
  pre.prefix_hit_tokens = 48;
  pre.priority = -2;
  r.requests.push_back(pre);

  r.preempted_ids = {12, 13};
  for (int i = 0; i < 3; ++i) {
    StepRecord s;
    s.step = i;
    s.start_s = 0.001 + 0.01 * i;
    s.duration_s = 0.0095;
    s.num_prefill_tokens = i == 0 ? 32 : 0;
    s.num_decode_tokens = i == 0 ? 0 : 2;
    s.num_prefill_seqs = i == 0 ? 1 : 0;
    s.num_decode_seqs = i == 0 ? 0 : 2;
    s.num_running = i == 0 ? 1 : 2;
    s.num_waiting = 1;
    s.kv_blocks_used = 2 + i;
    s.kv_blocks_cached = 1;
    if (i == 1) {
      s.preempted_begin = 0;
      s.preempted_end = 2;
    }
    r.steps.push_back(s);
  }

  BlockId a[] = {0, 1};
  BlockId b[] = {5};
  BlockId host[] = {100};
  r.kv.time = 0.001;
  r.kv.step = 0;
  r.kv.add(KvEventType::allocate, 10, a, 2);
  r.kv.add(KvEventType::cache, 10, a, 1);
  r.kv.time = 0.011;
  r.kv.step = 1;
  r.kv.add(KvEventType::share, 12, a, 1);
  r.kv.add(KvEventType::cow, 12, a, 1, b, 1);
  r.kv.add(KvEventType::swap_out, 12, b, 1, host, 1);
  r.kv.add(KvEventType::fork, 14, a, 2, nullptr, 0, 10);
  r.kv.add(KvEventType::free, 10, a, 2);

  r.duration_s = 13.0;
  r.kv_blocks_total = 8;
  r.kv_blocks_peak = 4;
  r.preemptions = 1;
  return r;
}

}  // namespace

TEST_CASE("write_run_outputs writes every file with the documented columns", "[outputs]") {
  TempDir dir("files");
  RunRecord r = sample_record();
  Summary s = summarize(r);
  Json config = Json::object();
  config["engine"]["block_size"] = 16;
  config["workload"] = "trace.jsonl";
  write_run_outputs((dir.path / "nested" / "run").string(), config, r, s);
  const fs::path out = dir.path / "nested" / "run";

  for (const char* f : {"config.json", "summary.json", "requests.csv", "steps.csv",
                        "kv_events.csv", "trace.json"})
    CHECK(fs::exists(out / f));
  for (const auto& e : fs::directory_iterator(out)) CHECK(e.path().extension() != ".tmp");

  CHECK(Json::parse_file((out / "config.json").string()).dump() == config.dump());

  Summary back = Summary::from_json(Json::parse_file((out / "summary.json").string()),
                                    "summary.json");
  CHECK(back.to_json().dump() == s.to_json().dump());
  CHECK(back.finished == 2);
  CHECK(back.failed == 1);

  auto req_lines = lines(read_text(out / "requests.csv"));
  REQUIRE(req_lines.size() == 1 + r.requests.size());
  CHECK(req_lines[0] ==
        "id,status,priority,prompt_len,output_len,target_len,arrival_s,first_scheduled_s,"
        "first_token_s,last_token_s,finished_s,num_preemptions,prefix_hit_tokens,error");
  CHECK(req_lines[1] ==
        "10,finished,0,32,4,4,0.000000,0.001000,0.010500,0.040000,0.040000,0,0,");
  CHECK(req_lines[2] == "11,failed,0,9000,0,-1,0.002000,,,,0.003000,0,0,"
                        "\"prompt too long, \"\"9000\"\" > 4096\"");
  CHECK(req_lines[3] == "12,running,0,16,2,2,0.005000,0.020000,0.030000,0.035000,,0,0,");
  CHECK(req_lines[4] ==
        "13,finished,-2,64,3,3,12.345679,12.500000,12.750000,13.000000,13.000000,1,48,");

  auto step_lines = lines(read_text(out / "steps.csv"));
  REQUIRE(step_lines.size() == 1 + r.steps.size());
  CHECK(step_lines[0] ==
        "step,start_s,duration_s,prefill_tokens,decode_tokens,prefill_seqs,decode_seqs,running,"
        "waiting,swapped,kv_blocks_used,kv_blocks_cached,preempted");
  CHECK(step_lines[1] == "0,0.001000,0.009500,32,0,1,0,1,1,0,2,1,");
  CHECK(step_lines[2] == "1,0.011000,0.009500,0,2,0,2,2,1,0,3,1,12;13");

  auto kv_lines = lines(read_text(out / "kv_events.csv"));
  REQUIRE(kv_lines.size() == 1 + r.kv.events.size());
  CHECK(kv_lines[0] == "time_s,step,type,seq,other,blocks,blocks2");
  CHECK(kv_lines[1] == "0.001000,0,allocate,10,-1,0 1,");
  CHECK(kv_lines[2] == "0.001000,0,cache,10,-1,0,");
  CHECK(kv_lines[3] == "0.011000,1,share,12,-1,0,");
  CHECK(kv_lines[4] == "0.011000,1,cow,12,-1,0,5");
  CHECK(kv_lines[5] == "0.011000,1,swap_out,12,-1,5,100");
  CHECK(kv_lines[6] == "0.011000,1,fork,14,10,0 1,");
  CHECK(kv_lines[7] == "0.011000,1,free,10,-1,0 1,");
}

TEST_CASE("trace.json is Chrome trace format with steps, counters and nested spans",
          "[outputs]") {
  TempDir dir("trace");
  RunRecord r = sample_record();
  write_run_outputs(dir.path.string(), Json::object(), r, summarize(r));
  Json t = Json::parse_file((dir.path / "trace.json").string());
  CHECK(t.get("displayTimeUnit")->as_string() == "ms");
  const auto& events = t.get("traceEvents")->as_array();

  size_t x = 0, counters = 0;
  std::map<int64_t, std::vector<std::pair<std::string, std::string>>> spans;  // id -> (ph,name)
  std::map<int64_t, double> span_end;
  for (const Json& e : events) {
    const std::string& ph = e.get("ph")->as_string();
    if (ph == "X") {
      CHECK(e.get("name")->as_string() == "step " + std::to_string(x));
      CHECK(e.get("ts")->as_number() == Approx(r.steps[x].start_s * 1e6));
      CHECK(e.get("dur")->as_number() == Approx(9500.0));
      CHECK(e.get("args")->get("prefill_tokens")->as_int() == r.steps[x].num_prefill_tokens);
      CHECK(e.get("args")->get("decode_tokens")->as_int() == r.steps[x].num_decode_tokens);
      ++x;
    } else if (ph == "C") {
      ++counters;
      CHECK(e.get("args")->is_object());
    } else if (ph == "b" || ph == "e") {
      CHECK(e.get("cat")->as_string() == "request");
      int64_t id = e.get("id")->as_int();
      spans[id].push_back({ph, e.get("name")->as_string()});
      if (ph == "e") span_end[id] = e.get("ts")->as_number();
    }
  }
  CHECK(x == r.steps.size());
  // Queue samples at steps 0 and 1 (2 unchanged), KV samples at every step (used changes).
  CHECK(counters == 2 + 3);

  // Spans per request: finished = request + queued + prefill + decode; failed before scheduling
  // = request + queued; running = all four phases, ending at its last token.
  REQUIRE(spans.size() == 4);
  CHECK(spans[10].size() == 8);
  CHECK(spans[11].size() == 4);
  CHECK(spans[12].size() == 8);
  CHECK(spans[13].size() == 8);
  for (auto& [id, seq] : spans) {
    std::vector<std::string> stack;
    for (auto& [ph, name] : seq) {
      if (ph == "b") {
        stack.push_back(name);
      } else {
        REQUIRE(!stack.empty());
        CHECK(stack.back() == name);
        stack.pop_back();
      }
    }
    CHECK(stack.empty());
    CHECK(seq.front().second == "request " + std::to_string(id));
  }
  CHECK(spans[10][1].second == "queued");
  CHECK(spans[10][3].second == "prefill");
  CHECK(spans[10][5].second == "decode");
  CHECK(span_end[10] == Approx(0.04e6));
  CHECK(span_end[11] == Approx(0.003e6));  // failed: its last known time
  CHECK(span_end[12] == Approx(0.035e6));  // unfinished: its last token
}

TEST_CASE("write_run_outputs handles empty records and reports I/O errors", "[outputs]") {
  TempDir dir("errors");
  RunRecord empty;
  write_run_outputs(dir.path.string(), Json::object(), empty, summarize(empty));
  CHECK(lines(read_text(dir.path / "requests.csv")).size() == 1);
  CHECK(lines(read_text(dir.path / "steps.csv")).size() == 1);
  Json t = Json::parse_file((dir.path / "trace.json").string());
  CHECK(t.get("traceEvents")->as_array().size() == 3);  // metadata only

  // A regular file where the directory should be.
  std::ofstream((dir.path / "blocker").string()) << "x";
  std::string target = (dir.path / "blocker" / "run").string();
  CHECK_THROWS_WITH(write_run_outputs(target, Json::object(), empty, summarize(empty)),
                    Catch::Contains(target));

  // A record whose step points past preempted_ids is refused, naming the step.
  RunRecord bad = sample_record();
  bad.steps[2].preempted_end = 9;
  bad.steps[2].preempted_begin = 1;
  CHECK_THROWS_WITH(write_run_outputs(dir.path.string(), Json::object(), bad, summarize(bad)),
                    Catch::Contains("step 2"));
}

TEST_CASE("times far from zero keep their fixed-point form", "[outputs]") {
  TempDir dir("times");
  RunRecord r;
  r.requests.push_back(req(1, SeqStatus::finished, 1, 1, -0.25, 1e15, 4.0000005e-7, 7.9999994,
                           123456.000001));
  write_run_outputs(dir.path.string(), Json::object(), r, summarize(r));
  auto l = lines(read_text(dir.path / "requests.csv"));
  REQUIRE(l.size() == 2);
  CHECK(l[1] == "1,finished,0,1,1,1,-0.250000,1000000000000000.000000,0.000000,7.999999,"
                "123456.000001,0,0,");
}

TEST_CASE("files larger than one write chunk come out whole", "[outputs]") {
  TempDir dir("large");
  RunRecord r;
  constexpr int kSteps = 150000;  // steps.csv ~7 MB: crosses the 4 MiB chunk
  for (int i = 0; i < kSteps; ++i) {
    StepRecord s;
    s.step = i;
    s.start_s = i * 0.001;
    s.duration_s = 0.001;
    s.num_decode_tokens = i % 100;
    s.kv_blocks_used = i % 1000;
    r.steps.push_back(s);
  }
  RequestRecord q = req(1, SeqStatus::failed, 1, 0, 0.0, U, U, U, 0.5);
  q.error = std::string(3000, 'x') + ",end";  // longer than one primitive append
  r.requests.push_back(q);
  write_run_outputs(dir.path.string(), Json::object(), r, summarize(r));

  auto l = lines(read_text(dir.path / "steps.csv"));
  REQUIRE(l.size() == 1 + kSteps);
  int bad_rows = 0;  // every row starts with its step and has all 13 fields
  for (int i = 0; i < kSteps; ++i) {
    const std::string& row = l[static_cast<size_t>(i) + 1];
    bad_rows += row.rfind(std::to_string(i) + ",", 0) != 0 ||
                std::count(row.begin(), row.end(), ',') != 12;
  }
  CHECK(bad_rows == 0);
  CHECK(l[kSteps] == "149999,149.999000,0.001000,0,99,0,0,0,0,0,999,0,");
  auto req_lines = lines(read_text(dir.path / "requests.csv"));
  REQUIRE(req_lines.size() == 2);
  CHECK(req_lines[1] == "1,failed,0,1,0,0,0.000000,,,,0.500000,0,0,\"" + q.error + "\"");
  Json t = Json::parse_file((dir.path / "trace.json").string());
  size_t x = 0;
  for (const Json& e : t.get("traceEvents")->as_array()) x += e.get("ph")->as_string() == "X";
  CHECK(x == kSteps);
}
