#include <catch2/catch.hpp>

#include <cmath>

#include "core/error.h"
#include "core/run_record.h"

using namespace twinfer;

namespace {

RequestRecord req(RequestId id, SeqStatus st, int32_t prompt, int32_t out, double arrival,
                  double sched, double first_tok, double fin) {
  RequestRecord q;
  q.id = id;
  q.status = st;
  q.prompt_len = prompt;
  q.output_len = out;
  q.times.arrival = arrival;
  q.times.first_scheduled = sched;
  q.times.first_token = first_tok;
  q.times.last_token = fin;
  q.times.finished = fin;
  return q;
}

constexpr double U = RequestTimes::kUnset;

// Three finished requests (one with a single output token), one failed, one still running.
RunRecord hand_record() {
  RunRecord r;
  r.backend = "sim";
  r.requests.push_back(req(4, SeqStatus::finished, 20, 3, 0.0, 0.25, 1.0, 3.0));
  r.requests.push_back(req(0, SeqStatus::finished, 100, 5, 1.0, 1.5, 2.0, 4.0));
  r.requests.push_back(req(1, SeqStatus::finished, 10, 1, 2.0, 2.0, 2.25, 2.25));
  RequestRecord failed = req(2, SeqStatus::failed, 5000, 0, 3.0, U, U, 3.0);
  failed.error = "prompt longer than max_model_len";
  r.requests.push_back(failed);
  r.requests.push_back(req(3, SeqStatus::running, 7, 2, 3.5, 4.0, 4.5, U));
  r.itl_s = {0.5f, 0.5f, 0.5f, 0.5f, 1.0f, 1.0f};
  r.duration_s = 4.0;
  r.steps.resize(9);
  r.preemptions = 2;
  r.kv_blocks_total = 128;
  r.kv_blocks_peak = 77;
  r.kv_capacity_tokens = 2048;
  r.prefix_queried_blocks = 8;
  r.prefix_hit_blocks = 2;
  r.wall_s = 0.125;
  return r;
}

}  // namespace

TEST_CASE("percentile interpolates linearly like numpy", "[metrics]") {
  std::vector<double> v = {4, 1, 3, 2};
  CHECK(percentile(v, 50) == Approx(2.5));
  CHECK(v == std::vector<double>{1, 2, 3, 4});  // sorted in place
  CHECK(percentile(v, 90) == Approx(3.7));
  CHECK(percentile(v, 0) == 1.0);
  CHECK(percentile(v, 100) == 4.0);

  std::vector<double> w = {50, 15, 40, 20, 35};
  CHECK(percentile(w, 40) == Approx(29.0));
  CHECK(percentile(w, 99) == Approx(49.6));
  CHECK(percentile(w, 25) == Approx(20.0));

  std::vector<double> one = {7.5};
  CHECK(percentile(one, 99) == 7.5);
  std::vector<double> none;
  CHECK(percentile(none, 50) == 0.0);
  // NaN entries (unset stamps) are ignored rather than corrupting the sort.
  std::vector<double> with_nan = {std::nan(""), 3, 1, std::nan(""), 2};
  CHECK(percentile(with_nan, 50) == 2.0);
}

TEST_CASE("percentiles gives mean, p50..p99 and count", "[metrics]") {
  std::vector<double> v;
  for (int i = 1; i <= 101; ++i) v.push_back(static_cast<double>(102 - i));  // 101..1
  Percentiles p = percentiles(v);
  CHECK(p.count == 101);
  CHECK(p.mean == Approx(51.0));
  CHECK(p.p50 == Approx(51.0));
  CHECK(p.p90 == Approx(91.0));
  CHECK(p.p95 == Approx(96.0));
  CHECK(p.p99 == Approx(100.0));
  Percentiles empty = percentiles({});
  CHECK(empty.count == 0);
  CHECK(empty.mean == 0.0);
  CHECK(empty.p99 == 0.0);
}

TEST_CASE("summarize computes exact latencies from finished requests only", "[metrics]") {
  Summary s = summarize(hand_record());
  CHECK(s.backend == "sim");
  CHECK(s.requests == 5);
  CHECK(s.finished == 3);
  CHECK(s.failed == 1);
  CHECK(s.unfinished == 1);

  // TTFT {1000, 1000, 250} ms; e2e {3000, 3000, 250}; queue {250, 500, 0}.
  CHECK(s.ttft_ms.count == 3);
  CHECK(s.ttft_ms.mean == Approx(750.0));
  CHECK(s.ttft_ms.p50 == Approx(1000.0));
  CHECK(s.ttft_ms.p90 == Approx(1000.0));
  CHECK(s.e2e_ms.mean == Approx(6250.0 / 3.0));
  CHECK(s.e2e_ms.p50 == Approx(3000.0));
  CHECK(s.queue_ms.mean == Approx(250.0));
  CHECK(s.queue_ms.p50 == Approx(250.0));
  CHECK(s.queue_ms.p90 == Approx(450.0));
  // TPOT only where output_len > 1: (3-1)/2 s = 1000 ms and (4-2)/4 s = 500 ms.
  CHECK(s.tpot_ms.count == 2);
  CHECK(s.tpot_ms.mean == Approx(750.0));
  CHECK(s.tpot_ms.p50 == Approx(750.0));
  CHECK(s.tpot_ms.p90 == Approx(950.0));
  // ITL: every recorded gap.
  CHECK(s.itl_ms.count == 6);
  CHECK(s.itl_ms.mean == Approx(4000.0 / 6.0));
  CHECK(s.itl_ms.p50 == Approx(500.0));
  CHECK(s.itl_ms.p99 == Approx(1000.0));

  // Throughput over duration 4 s: 3 req, 9 output tokens, 130 + 9 total tokens.
  CHECK(s.input_tokens == 130);
  CHECK(s.output_tokens == 9);
  CHECK(s.req_per_s == Approx(0.75));
  CHECK(s.output_tok_per_s == Approx(2.25));
  CHECK(s.total_tok_per_s == Approx(34.75));
  CHECK(s.prefix_cache_hit_rate == Approx(0.25));
  CHECK(s.preemptions == 2);
  CHECK(s.kv_blocks_total == 128);
  CHECK(s.kv_blocks_peak == 77);
  CHECK(s.kv_capacity_tokens == 2048);
  CHECK(s.steps == 9);
  CHECK(s.wall_s == 0.125);
}

TEST_CASE("summarize handles empty runs and no prefix queries", "[metrics]") {
  RunRecord r;
  Summary s = summarize(r);
  CHECK(s.requests == 0);
  CHECK(s.req_per_s == 0.0);
  CHECK(s.prefix_cache_hit_rate == 0.0);
  CHECK(s.ttft_ms.count == 0);
  // Failed and unfinished requests are counted but give no latency samples.
  r.requests.push_back(req(1, SeqStatus::failed, 10, 0, 0.0, U, U, 0.5));
  r.requests.push_back(req(2, SeqStatus::swapped, 10, 4, 0.0, 0.1, 0.2, U));
  r.duration_s = 1.0;
  s = summarize(r);
  CHECK(s.requests == 2);
  CHECK(s.failed == 1);
  CHECK(s.unfinished == 1);
  CHECK(s.ttft_ms.count == 0);
  CHECK(s.queue_ms.count == 0);
  CHECK(s.output_tokens == 0);
  CHECK(s.req_per_s == 0.0);
}

TEST_CASE("summary json round-trips exactly", "[metrics]") {
  Summary s = summarize(hand_record());
  s.wall_s = 0.1 + 0.2;  // a value with no short decimal form
  Json j = s.to_json();
  CHECK(j.get("ttft_ms")->get("p50")->as_number() == Approx(1000.0));
  CHECK(j.get("req_per_s")->as_number() == Approx(0.75));
  Json parsed = Json::parse(j.dump(2), "summary.json");
  Summary back = Summary::from_json(parsed, "summary.json");
  CHECK(back.to_json().dump() == j.dump());
  CHECK(back.wall_s == s.wall_s);
  CHECK(back.tpot_ms.p90 == s.tpot_ms.p90);
  CHECK(back.itl_ms.mean == s.itl_ms.mean);
  CHECK(back.backend == "sim");
  CHECK(back.kv_blocks_peak == 77);

  // Non-finite numbers are written as null and read back as NaN.
  s.duration_s = std::nan("");
  Summary nan_back = Summary::from_json(Json::parse(s.to_json().dump()), "x");
  CHECK(std::isnan(nan_back.duration_s));
}

TEST_CASE("summary from_json names the file and field on bad input", "[metrics]") {
  Json j = summarize(hand_record()).to_json();
  Json missing = j;
  missing["ttft_ms"].as_object_mut().erase("p90");
  CHECK_THROWS_WITH(Summary::from_json(missing, "runs/a/summary.json"),
                    Catch::Contains("runs/a/summary.json") && Catch::Contains("ttft_ms.p90"));
  Json wrong = j;
  wrong["steps"] = "many";
  CHECK_THROWS_AS(Summary::from_json(wrong, "s.json"), ConfigError);
  CHECK_THROWS_WITH(Summary::from_json(wrong, "s.json"),
                    Catch::Contains("steps") && Catch::Contains("expected a number"));
  Json frac = j;
  frac["requests"] = 2.5;
  CHECK_THROWS_WITH(Summary::from_json(frac, "s.json"), Catch::Contains("requests"));
  Json inconsistent = j;
  inconsistent["failed"] = 4;
  CHECK_THROWS_WITH(Summary::from_json(inconsistent, "s.json"), Catch::Contains("!= requests"));
  CHECK_THROWS_AS(Summary::from_json(Json::array(), "s.json"), ConfigError);
}

TEST_CASE("status and kv event names", "[metrics]") {
  CHECK(std::string(seq_status_name(SeqStatus::waiting)) == "waiting");
  CHECK(std::string(seq_status_name(SeqStatus::running)) == "running");
  CHECK(std::string(seq_status_name(SeqStatus::swapped)) == "swapped");
  CHECK(std::string(seq_status_name(SeqStatus::finished)) == "finished");
  CHECK(std::string(seq_status_name(SeqStatus::failed)) == "failed");
  const char* names[] = {"allocate", "share", "free",     "cache",  "evict",
                         "cow",      "fork",  "swap_out", "swap_in"};
  for (int i = 0; i < 9; ++i)
    CHECK(std::string(kv_event_name(static_cast<KvEventType>(i))) == names[i]);
}
