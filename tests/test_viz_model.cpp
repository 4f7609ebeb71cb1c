// The visualizer's UI-free model: loading run folders (good, partial, corrupt), replaying KV
// events exactly, derived series, PNG round trips, and the live stepper against `twinfer run`.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "app/run.h"
#include "core/error.h"
#include "viz/live/live_sim.h"
#include "viz/model/kv_replay.h"
#include "viz/model/png.h"
#include "viz/model/run_data.h"
#include "viz/model/series.h"

using namespace twinfer;
using namespace twinfer::viz;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() / ("twinfer_viz_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

const char* kRequestsHeader =
    "id,status,priority,prompt_len,output_len,target_len,arrival_s,first_scheduled_s,"
    "first_token_s,last_token_s,finished_s,num_preemptions,prefix_hit_tokens,error\n";
const char* kStepsHeader =
    "step,start_s,duration_s,prefill_tokens,decode_tokens,prefill_seqs,decode_seqs,running,"
    "waiting,swapped,kv_blocks_used,kv_blocks_cached,preempted\n";
const char* kKvHeader = "time_s,step,type,seq,other,blocks,blocks2\n";

// A hand-made run over 8 GPU blocks and 4 host blocks exercising every event type; the
// comments give the state after each step, which steps.csv repeats (the replay checks it).
const char* kEvents =
    "0.000000,0,allocate,1,-1,0 1,\n"     // seq1: [0 1]
    "0.000000,0,cache,1,-1,0,\n"          // block 0 hashed
    "0.000000,0,allocate,2,-1,2,\n"       // seq2: [2]          used 3
    "0.100000,1,share,3,-1,0,\n"          // seq3: [0] (ref 2)
    "0.100000,1,allocate,3,-1,3,\n"       // seq3: [0 3]
    "0.100000,1,cow,3,-1,0,4\n"           // seq3: [4 3]; block 0 ref 1   used 5
    "0.200000,2,fork,4,1,0 1,\n"          // seq4 = seq1's table, refs 2
    "0.200000,2,free,4,-1,1 0,\n"         // back to ref 1               used 5
    "0.300000,3,swap_out,2,-1,2,0\n"      // seq2 -> host 0; block 2 free
    "0.300000,3,free,1,-1,1 0,\n"         // block 1 free, block 0 cached  used 2, cached 1
    "0.400000,4,evict,-1,-1,0,\n"         // block 0 free
    "0.400000,4,swap_in,2,-1,0,0\n"       // seq2: [0]                   used 3
    "0.500000,5,free,2,-1,0,\n"
    "0.500000,5,free,3,-1,3 4,\n";        // everything free
const char* kSteps =
    "0,0.000000,0.100000,10,0,2,0,2,0,0,3,0,\n"
    "1,0.100000,0.100000,8,2,1,2,3,0,0,5,0,\n"
    "2,0.200000,0.100000,0,3,0,3,3,0,0,5,0,\n"
    "3,0.300000,0.100000,0,2,0,2,1,0,1,2,1,2\n"
    "4,0.400000,0.100000,0,2,0,2,2,0,0,3,0,\n"
    "5,0.500000,0.100000,0,0,0,0,0,0,0,0,0,\n";
const char* kRequests =
    "1,finished,0,8,2,2,0.000000,0.000000,0.100000,0.300000,0.300000,0,0,\n"
    "2,finished,0,4,4,4,0.000000,0.000000,0.100000,0.500000,0.500000,1,0,\n"
    "3,finished,0,8,3,3,0.050000,0.100000,0.200000,0.500000,0.500000,0,4,\n"
    "4,failed,0,8,0,-1,0.150000,,,,0.250000,0,0,\"boom, \"\"quoted\"\"\"\n";

void write_summary(const fs::path& dir, int32_t blocks, int64_t requests = 4) {
  Summary s;
  s.backend = "sim";
  s.requests = requests;
  s.finished = requests;
  s.kv_blocks_total = blocks;
  write(dir / "summary.json", s.to_json().dump(2));
}

void write_run(const fs::path& dir, const std::string& kv = kEvents,
               const std::string& steps = kSteps, const std::string& requests = kRequests) {
  write_summary(dir, 8);
  write(dir / "config.json",
        R"({"engine":{"block-size":4},"resolved":{"memory":{"num_cpu_blocks":4}}})");
  write(dir / "requests.csv", kRequestsHeader + requests);
  write(dir / "steps.csv", kStepsHeader + steps);
  write(dir / "kv_events.csv", kKvHeader + kv);
}

std::string load_error(const std::string& dir) {
  try {
    load_run(dir);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

BlockState state(const KvReplay& r, int b) { return block_state(r.gpu()[static_cast<size_t>(b)]); }

}  // namespace

TEST_CASE("a run folder loads with every row and derived latency", "[viz]") {
  TempDir t("load");
  write_run(t.path);
  RunData d = load_run(t.str());
  REQUIRE(d.requests.size() == 4);
  REQUIRE(d.steps.size() == 6);
  REQUIRE(d.kv.events.size() == 14);
  CHECK(d.block_size == 4);
  CHECK(d.kv_blocks_total == 8);
  CHECK(d.cpu_blocks_total == 4);
  CHECK(d.warnings.empty());
  CHECK(d.requests[3].status == SeqStatus::failed);
  CHECK(d.requests[3].error == "boom, \"quoted\"");
  CHECK(std::isnan(d.requests[3].first_token));
  CHECK(std::isnan(d.requests[3].ttft));  // failed: no latency sample
  CHECK(d.requests[2].ttft == Approx(0.15));
  CHECK(d.requests[2].tpot == Approx(0.15));  // (0.5 - 0.2) / (3 - 1)
  CHECK(d.requests[2].queue == Approx(0.05));
  CHECK(d.preempted_ids == std::vector<RequestId>{2});
  CHECK(d.t_begin == 0.0);
  CHECK(d.t_end == Approx(0.6));
  // Request 2 was preempted at step 3 by swapping out and came back with swap_in at 0.4.
  const RequestRow& q = d.requests[1];
  const PhaseSpan& last = d.spans[q.span_end - 1];
  CHECK(last.phase == Phase::swapped);
  CHECK(last.t0 == Approx(0.3));
  CHECK(last.t1 == Approx(0.4));
  // Each request's KV events, in order: seq 3 has share, allocate, cow, free.
  const int32_t r3 = d.row_of(3);
  REQUIRE(d.seq_event_begin[static_cast<size_t>(r3) + 1] - d.seq_event_begin[static_cast<size_t>(r3)] == 4);
}

TEST_CASE("KV replay reproduces every block state, table and count", "[viz]") {
  TempDir t("replay");
  write_run(t.path);
  RunData d = load_run(t.str());
  KvReplay r(d, 1 << 20, 1);  // a checkpoint every event: seeks mix restores and forward steps
  CHECK(r.error().empty());
  CHECK(r.mismatches().empty());  // counts agree with steps.csv after every step
  REQUIRE(r.num_events() == 14);

  r.seek(3);  // after step 0
  CHECK(state(r, 0) == BlockState::used);
  CHECK(r.gpu()[0].hashed == 1);
  CHECK(r.gpu()[0].owner == d.row_of(1));
  CHECK(r.counts().used == 3);
  r.seek(4);  // seq 3 shares block 0
  CHECK(state(r, 0) == BlockState::shared);
  CHECK(r.gpu()[0].ref == 2);
  r.seek(6);  // after copy-on-write
  CHECK(r.gpu()[0].ref == 1);
  CHECK(r.gpu()[4].owner == d.row_of(3));
  CHECK(r.table_at(d.row_of(3), 6).gpu == std::vector<int32_t>{4, 3});
  CHECK(r.table_at(d.row_of(3), 5).gpu == std::vector<int32_t>{0, 3});
  r.seek(7);  // fork: seq 4 references seq 1's blocks
  CHECK(r.gpu()[1].ref == 2);
  CHECK(r.table_at(d.row_of(4), 7).gpu == std::vector<int32_t>{0, 1});
  CHECK(r.table_at(d.row_of(4), 8).gpu.empty());
  r.seek(10);  // after step 3: swapped out, block 0 cached
  CHECK(state(r, 0) == BlockState::cached);
  CHECK(state(r, 2) == BlockState::free);
  CHECK(r.host()[0].owner == d.row_of(2));
  CHECK(r.counts().host_swapped == 1);
  BlockTable swapped = r.table_at(d.row_of(2), 10);
  CHECK(swapped.gpu.empty());
  CHECK(swapped.host == std::vector<int32_t>{0});
  r.seek(12);
  CHECK(r.gpu()[0].owner == d.row_of(2));
  CHECK(r.table_at(d.row_of(2), 12).gpu == std::vector<int32_t>{0});
  CHECK(r.counts().host_swapped == 0);
  r.seek(14);
  CHECK(r.counts().free == 8);
  // Seeking backwards restores from a checkpoint.
  r.seek(2);
  CHECK(r.counts().used == 2);
  CHECK(r.events_until(0.1) == 6);
  CHECK(r.events_until(-1.0) == 0);

  // A coarse checkpoint interval gives the same states.
  KvReplay coarse(d, 1 << 20, 5);
  for (size_t n : {0, 13, 4, 9, 14, 1, 6}) {
    coarse.seek(n);
    r.seek(n);
    for (int b = 0; b < 8; ++b) {
      CHECK(coarse.gpu()[static_cast<size_t>(b)].ref == r.gpu()[static_cast<size_t>(b)].ref);
      CHECK(coarse.gpu()[static_cast<size_t>(b)].owner == r.gpu()[static_cast<size_t>(b)].owner);
    }
  }
}

TEST_CASE("inconsistent KV events stop the replay at the named line", "[viz]") {
  TempDir t("badkv");
  std::string kv = kEvents;
  // Without the evict, swap_in hands out block 0 while it is still cached.
  kv.erase(kv.find("0.400000,4,evict,-1,-1,0,\n"), std::string("0.400000,4,evict,-1,-1,0,\n").size());
  write_run(t.path, kv);
  RunData d = load_run(t.str());  // the rest of the run still loads
  KvReplay r(d);
  CHECK(r.num_events() == 10);
  CHECK_THAT(r.error(), Catch::Contains("kv_events.csv:12: swap_in of seq 2") &&
                            Catch::Contains("block 0 handed out while cached"));
  CHECK(r.counts().cached == 1);  // the state before the bad event

  // Counts that disagree with steps.csv are reported per step.
  std::string steps = kSteps;
  steps.replace(steps.find("3,0.300000,0.100000,0,2,0,2,1,0,1,2,1"), 37,
                "3,0.300000,0.100000,0,2,0,2,1,0,1,9,1");
  TempDir t2("mismatch");
  write_run(t2.path, kEvents, steps);
  RunData d2 = load_run(t2.str());
  KvReplay r2(d2);
  REQUIRE(r2.mismatches().size() == 1);
  CHECK_THAT(r2.mismatches()[0], Catch::Contains("step 3: replay has 2 used"));
}

TEST_CASE("missing, partial and corrupt run folders give one clear message", "[viz]") {
  TempDir t("bad");
  CHECK_THAT(load_error((t.path / "nope").string()), Catch::Contains("no such run folder"));
  write(t.path / "file.txt", "x");
  CHECK_THAT(load_error((t.path / "file.txt").string()), Catch::Contains("not a folder"));

  const fs::path part = t.path / "partial";
  fs::create_directories(part);
  write_run(part);
  fs::rename(part / "steps.csv", part / "steps.csv.tmp");
  CHECK_THAT(load_error(part.string()),
             Catch::Contains("missing steps.csv") && Catch::Contains("stopped while writing"));
  fs::remove(part / "steps.csv.tmp");
  CHECK_THAT(load_error(part.string()), Catch::Contains("not a complete run folder"));

  auto corrupt = [&](const std::string& name, const std::string& kv, const std::string& steps,
                     const std::string& requests) {
    const fs::path p = t.path / name;
    fs::create_directories(p);
    write_run(p, kv, steps, requests);
    return load_error(p.string());
  };
  CHECK_THAT(corrupt("badint", kEvents, kSteps, std::string(kRequests) + "5,finished,0,x7,1,1,0,0,0,0,0,0,0,\n"),
             Catch::Contains("requests.csv:6: column prompt_len: bad value 'x7'"));
  CHECK_THAT(corrupt("status", kEvents, kSteps, "1,done,0,8,2,2,0,0,0,0,0,0,0,\n"),
             Catch::Contains("requests.csv:2: column status: bad value 'done'"));
  CHECK_THAT(corrupt("fields", kEvents, "0,0.0,0.1,1,0\n", kRequests),
             Catch::Contains("steps.csv:2: expected 13 fields, found 5"));
  // A file cut off mid-row (no final line end).
  CHECK_THAT(corrupt("cut", std::string(kEvents) + "0.6,6,free,3", kSteps, kRequests),
             Catch::Contains("kv_events.csv:16: truncated row"));
  CHECK_THAT(corrupt("range", "0.0,0,allocate,1,-1,0 99,\n", kSteps, kRequests),
             Catch::Contains("kv_events.csv:2: column blocks: bad value '0 99'") &&
                 Catch::Contains("[0, 8)"));
  CHECK_THAT(corrupt("type", "0.0,0,alloc,1,-1,0,\n", kSteps, kRequests),
             Catch::Contains("column type: bad value 'alloc'"));
  CHECK_THAT(corrupt("pairs", "0.0,0,cow,1,-1,0 1,2\n", kSteps, kRequests),
             Catch::Contains("as many ids as the blocks column"));
  CHECK_THAT(corrupt("dup", kEvents, kSteps, std::string(kRequests) + std::string(kRequests).substr(0, 60) + "\n"),
             Catch::Contains("requests.csv:6"));

  const fs::path hdr = t.path / "header";
  fs::create_directories(hdr);
  write_run(hdr);
  write(hdr / "steps.csv", "step,start\n");
  CHECK_THAT(load_error(hdr.string()),
             Catch::Contains("steps.csv:1: unexpected header 'step,start'") && Catch::Contains("expected step,start_s"));
  write_run(hdr);
  write(hdr / "summary.json", "{\"backend\": \"sim\"");
  CHECK_THAT(load_error(hdr.string()), Catch::Contains("summary.json"));
  write(hdr / "summary.json", "{\"backend\": \"sim\"}");
  CHECK_THAT(load_error(hdr.string()), Catch::Contains("missing field"));

  // Optional files: a warning, not an error.
  const fs::path opt = t.path / "optional";
  fs::create_directories(opt);
  write_run(opt);
  fs::remove(opt / "kv_events.csv");
  fs::remove(opt / "config.json");
  RunData d = load_run(opt.string());
  CHECK_FALSE(d.has_kv_events);
  CHECK(d.warnings.size() == 2);
  CHECK(d.block_size == 16);
}

TEST_CASE("a simulated run replays exactly against its own steps.csv", "[viz]") {
  TempDir t("sim");
  RunConfig cfg = live_default_config();
  cfg.engine.preemption_mode = "swap";
  cfg.engine.num_gpu_blocks_override = 160;
  cfg.workload.num_requests = cfg.workload.max_requests = 80;
  cfg.out = t.str();
  RunOptions opt;
  opt.quiet = true;
  RunResult res = run_config(cfg, opt);
  REQUIRE(res.summary.preemptions > 0);  // the small pool must force swaps

  RunData d = load_run(t.str());
  CHECK(d.requests.size() == res.record.requests.size());
  CHECK(d.steps.size() == res.record.steps.size());
  CHECK(d.kv.events.size() == res.record.kv.events.size());
  CHECK(d.cpu_blocks_total == res.record.cpu_blocks_total);
  KvReplay r(d, size_t{1} << 20);
  CHECK(r.error().empty());
  for (const std::string& m : r.mismatches()) UNSCOPED_INFO(m);
  CHECK(r.mismatches().empty());
  CHECK(r.counts().used + r.counts().shared == 0);  // every request finished
  size_t swapped_spans = 0;
  for (const PhaseSpan& s : d.spans) {
    CHECK(s.t1 >= s.t0);
    swapped_spans += s.phase == Phase::swapped;
  }
  CHECK(swapped_spans > 0);

  // The in-memory path gives the same model as the files.
  RunData m = run_from_record(res.record, res.summary, res.config, "mem");
  CHECK(m.spans.size() == d.spans.size());
  CHECK(m.kv.ids == d.kv.ids);

  // Prefix caching adds share, cache and evict events; they must replay without an error.
  TempDir t2("simpc");
  cfg.engine.enable_prefix_caching = true;
  cfg.workload.prefix_len = 64;
  cfg.out = t2.str();
  run_config(cfg, opt);
  RunData pc = load_run(t2.str());
  KvReplay rp(pc, size_t{1} << 20);
  CHECK(rp.error().empty());
  CHECK(rp.num_events() == pc.kv.events.size());
  size_t shares = 0;
  for (const KvEvent& e : pc.kv.events) shares += e.type == KvEventType::share;
  CHECK(shares > 0);
}

TEST_CASE("the live stepper reproduces twinfer run step for step", "[viz]") {
  RunConfig cfg = live_default_config();
  cfg.workload.num_requests = cfg.workload.max_requests = 40;
  RunOptions opt;
  opt.quiet = true;
  opt.write_outputs = false;
  RunResult ref = run_config(cfg, opt);

  LiveSim live(cfg);
  int64_t steps = 0;
  double last = -1;
  while (live.step()) {
    ++steps;
    CHECK(live.now() >= last);
    last = live.now();
    if (steps == 10) {
      RunData mid = live.snapshot("mid");
      CHECK(mid.steps.size() == 10);
    }
  }
  CHECK(live.done());
  CHECK(steps == static_cast<int64_t>(ref.record.steps.size()));
  RunData d = live.snapshot("live");
  CHECK(d.summary.finished == ref.summary.finished);
  CHECK(d.summary.ttft_ms.mean == Approx(ref.summary.ttft_ms.mean));
  CHECK(d.kv.events.size() == ref.record.kv.events.size());

  // Advancing by time stops between events and ends in the same place.
  LiveSim timed(cfg);
  timed.advance_to(0.5);
  CHECK(timed.now() == Approx(0.5));
  CHECK(timed.steps() > 0);
  CHECK(timed.steps() < steps);
  timed.advance_to(1e9);
  CHECK(timed.steps() == steps);

  RunConfig bad = cfg;
  bad.engine.block_size = 0;
  CHECK_THROWS_AS(LiveSim(bad), ConfigError);
}

TEST_CASE("series downsample step functions and compare summaries", "[viz]") {
  std::vector<double> x = {0, 1, 2, 3};
  std::vector<float> v = {5, 1, 7, 2};
  std::vector<ColumnRange> cols;
  column_ranges(x, v, 0, 4, 2, cols);  // columns [0,2) and [2,4)
  REQUIRE(cols.size() == 2);
  CHECK(cols[0].lo == 1);
  CHECK(cols[0].hi == 5);
  CHECK(cols[1].lo == 1);  // value 1 is held into the column until x = 2
  CHECK(cols[1].hi == 7);
  column_ranges(x, v, 0.5, 0.75, 1, cols);  // no sample inside: the held value
  CHECK(cols[0].valid);
  CHECK(cols[0].lo == 5);
  column_ranges(x, v, 10, 20, 3, cols);  // after the run
  CHECK_FALSE(cols[0].valid);

  std::vector<float> s = {1, 2, 3, 4, 5};
  CHECK(sorted_quantile(s, 0.5) == 3);
  CHECK(sorted_quantile(s, 0.25) == 2);
  CHECK(sorted_quantile(s, 0.9) == Approx(4.6));
  CHECK(std::isnan(sorted_quantile({}, 0.5)));

  Summary a, b;
  a.ttft_ms.p99 = 100;
  b.ttft_ms.p99 = 150;
  auto rows = compare_summaries(a, b);
  auto it = std::find_if(rows.begin(), rows.end(), [](const CompareRow& r) { return r.metric == "TTFT p99 ms"; });
  REQUIRE(it != rows.end());
  CHECK(it->delta() == 50);
  CHECK(it->rel() == Approx(0.5));
  CHECK(it->lower_is_better);

  TempDir t("series");
  write_run(t.path);
  RunData d = load_run(t.str());
  RunSeries rs = build_series(d, 6);
  CHECK(rs.t.size() == 6);
  CHECK(rs.kv_used[1] == Approx(5.0 / 8));
  CHECK(rs.ttft_ms.size() == 3);  // finished requests only
  double tokens = 0;
  for (float f : rs.prefill_tok_s) tokens += f * rs.bin_s;
  CHECK(tokens == Approx(18));
  // Cached peaks equal a scan of the series.
  float run_max = 0, q_max = 0, tok_max = 0;
  for (size_t i = 0; i < rs.t.size(); ++i) {
    run_max = std::max(run_max, rs.running[i]);
    q_max = std::max({q_max, rs.running[i], rs.waiting[i], rs.swapped[i]});
  }
  for (size_t b = 0; b < rs.prefill_tok_s.size(); ++b) tok_max = std::max({tok_max, rs.prefill_tok_s[b], rs.decode_tok_s[b]});
  CHECK(run_max > 0);
  CHECK(rs.running_max == run_max);
  CHECK(rs.queue_max == q_max);
  CHECK(rs.tok_s_max == tok_max);
}

TEST_CASE("PNG files round trip and blank images are detected", "[viz]") {
  TempDir t("png");
  Image img;
  img.width = 37;
  img.height = 21;
  img.channels = 4;
  img.pixels.assign(37 * 21 * 4, 0);
  for (int y = 0; y < 21; ++y)
    for (int x = 0; x < 37; ++x) {
      uint8_t* p = &img.pixels[static_cast<size_t>((y * 37 + x) * 4)];
      p[0] = 20, p[1] = 20, p[2] = 30, p[3] = 255;
      if (x > 30 && y > 10) p[0] = static_cast<uint8_t>(x * 7), p[1] = static_cast<uint8_t>(y * 11);
    }
  const std::string path = (t.path / "a.png").string();
  write_png(path, img);
  Image back = read_png(path);
  CHECK(back.width == 37);
  CHECK(back.height == 21);
  CHECK(back.pixels == img.pixels);
  uint8_t bg[3];
  dominant_color(back, bg);
  CHECK((bg[0] == 20 && bg[1] == 20 && bg[2] == 30));
  CHECK(non_background_fraction(back, bg) == Approx(6.0 * 10 / (37 * 21)));

  write(t.path / "bad.png", "\x89PNG\r\n\x1a\nxxxx");
  CHECK_THROWS_WITH(read_png((t.path / "bad.png").string()), Catch::Contains("truncated chunk"));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[40] = static_cast<char>(bytes[40] ^ 0xff);  // inside IDAT: the CRC no longer matches
  write(t.path / "crc.png", bytes);
  CHECK_THROWS_WITH(read_png((t.path / "crc.png").string()), Catch::Contains("CRC mismatch"));
}
