#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/workload.h"

using namespace twinfer;

namespace {

const std::string kFixtures = std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/";
const std::string kAzure = kFixtures + "azure_conv_head.csv";
const std::string kMooncake = kFixtures + "mooncake_head.jsonl";

WorkloadConfig trace(const std::string& path) {
  WorkloadConfig w;
  w.workload = path;
  return w;
}

WorkloadConfig synthetic(int64_t n, double rate, const std::string& arrival = "poisson") {
  WorkloadConfig w;
  w.workload = "synthetic";
  w.arrival = arrival;
  w.num_requests = n;
  w.rate = rate;
  return w;
}

// The message of the ConfigError that parsing `text` throws ("" when none is thrown).
std::string csv_error(const std::string& text) {
  std::istringstream in(text);
  try {
    parse_azure_csv(in, "bad.csv");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string jsonl_error(const std::string& text) {
  std::istringstream in(text);
  try {
    parse_mooncake_jsonl(in, "bad.jsonl");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const std::string kHeader = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
const std::string kRow = "2023-11-16 18:15:46.6805900,374,44\n";

void check_invariants(const std::vector<RequestSpec>& reqs) {
  for (size_t i = 0; i < reqs.size(); ++i) {
    const RequestSpec& r = reqs[i];
    REQUIRE(r.id == static_cast<RequestId>(i));
    REQUIRE(r.prompt_len >= 1);
    REQUIRE(r.output_len >= 1);
    REQUIRE(r.sampling.max_tokens == r.output_len);
    REQUIRE(r.sampling.ignore_eos);
    if (i > 0) REQUIRE(reqs[i - 1].arrival_s <= r.arrival_s);
  }
}

}  // namespace

TEST_CASE("azure fixture: arrivals from timestamps, lengths, ids", "[workload]") {
  auto reqs = load_workload(trace(kAzure), 0);
  REQUIRE(reqs.size() == 200);
  check_invariants(reqs);
  CHECK(reqs[0].arrival_s == 0.0);
  CHECK(reqs[1].arrival_s == Approx(4.3145790).margin(1e-9));
  CHECK(reqs[2].arrival_s == Approx(4.5418770).margin(1e-9));
  CHECK(reqs[4].arrival_s == Approx(5.8926551).margin(1e-9));
  CHECK(reqs[199].arrival_s == Approx(61.2635372).margin(1e-9));
  CHECK(reqs[0].prompt_len == 374);
  CHECK(reqs[0].output_len == 44);
  CHECK(reqs[1].prompt_len == 396);
  CHECK(reqs[1].output_len == 109);
  CHECK(reqs[0].hash_ids.empty());
  int64_t ctx = 0, gen = 0;
  for (const auto& r : reqs) ctx += r.prompt_len, gen += r.output_len;
  CHECK(ctx == 180695);
  CHECK(gen == 47050);
}

TEST_CASE("azure: time_scale, max_requests, offline, rate override", "[workload]") {
  WorkloadConfig w = trace(kAzure);
  w.time_scale = 0.5;
  auto fast = load_workload(w, 0);
  CHECK(fast[1].arrival_s == Approx(4.3145790 * 0.5).margin(1e-9));
  CHECK(fast[199].arrival_s == Approx(61.2635372 * 0.5).margin(1e-9));

  w = trace(kAzure);
  w.max_requests = 5;
  auto head = load_workload(w, 0);
  REQUIRE(head.size() == 5);
  CHECK(head[4].arrival_s == Approx(5.8926551).margin(1e-9));
  CHECK(head[4].prompt_len == 91);

  w = trace(kAzure);
  w.arrival = "offline";
  auto off = load_workload(w, 0);
  REQUIRE(off.size() == 200);
  for (const auto& r : off) REQUIRE(r.arrival_s == 0.0);
  CHECK(off[1].prompt_len == 396);  // order stays the trace's

  w = trace(kAzure);
  w.arrival = "poisson";
  w.rate = 10;
  auto re = load_workload(w, 7);
  check_invariants(re);
  CHECK(re[0].arrival_s == 0.0);
  CHECK(re[1].prompt_len == 396);  // lengths keep the trace order, only times change
  CHECK(re[1].arrival_s != Approx(4.3145790).margin(1e-6));
  w.rate = 0;
  CHECK_THROWS_WITH(load_workload(w, 7), Catch::Contains("--rate"));
}

TEST_CASE("azure: zero generated tokens clamp to 1; unsorted rows sort stably", "[workload]") {
  std::istringstream in(kHeader +
                        "2023-01-01 00:00:05,10,0\n"
                        "2023-01-01 00:00:01.5,0,3\n"
                        "2023-01-01 00:00:05,20,4\r\n"
                        "\n");
  auto reqs = parse_azure_csv(in, "mem.csv");
  REQUIRE(reqs.size() == 3);
  check_invariants(reqs);
  CHECK(reqs[0].arrival_s == 0.0);
  CHECK(reqs[0].prompt_len == 1);  // ContextTokens 0 clamps to 1 too
  CHECK(reqs[1].arrival_s == Approx(3.5));
  CHECK(reqs[1].prompt_len == 10);
  CHECK(reqs[1].output_len == 1);
  CHECK(reqs[2].prompt_len == 20);  // tie at 5 s keeps file order
  // Across a leap day and a month boundary.
  std::istringstream leap(kHeader + "2024-02-28 23:59:59.9,1,1\n2024-03-01 00:00:00.1,1,1\n");
  auto l = parse_azure_csv(leap, "leap.csv");
  CHECK(l[1].arrival_s == Approx(86400.2).margin(1e-9));
}

TEST_CASE("azure: malformed rows name file:line, column and value", "[workload]") {
  std::string e = csv_error(kHeader + kRow + "2023-11-16 25:15:46.68,374,44\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:3") && Catch::Contains("TIMESTAMP") &&
                    Catch::Contains("'2023-11-16 25:15:46.68'"));
  e = csv_error(kHeader + "2023-02-30 00:00:00,1,1\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:2") && Catch::Contains("TIMESTAMP"));
  e = csv_error(kHeader + kRow + kRow + "2023-11-16 18:15:47,abc,44\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:4") && Catch::Contains("ContextTokens") &&
                    Catch::Contains("'abc'"));
  e = csv_error(kHeader + "2023-11-16 18:15:47,12,4x\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:2") && Catch::Contains("GeneratedTokens") &&
                    Catch::Contains("'4x'"));
  e = csv_error(kHeader + "2023-11-16 18:15:47,12,-3\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:2") && Catch::Contains("GeneratedTokens") &&
                    Catch::Contains("'-3'"));
  e = csv_error(kHeader + kRow + "2023-11-16 18:15:47,12\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:3") && Catch::Contains("GeneratedTokens") &&
                    Catch::Contains("'2023-11-16 18:15:47,12'"));
  e = csv_error(kHeader + "2023-11-16 18:15:47,12,4,9\n");
  CHECK_THAT(e, Catch::Contains("bad.csv:2") && Catch::Contains("column 4") &&
                    Catch::Contains("'9'"));
  e = csv_error("TIMESTAMP,PromptTokens,GeneratedTokens\n" + kRow);
  CHECK_THAT(e, Catch::Contains("bad.csv:1") && Catch::Contains("ContextTokens") &&
                    Catch::Contains("'PromptTokens'"));
  e = csv_error("TIMESTAMP,ContextTokens\n" + kRow);
  CHECK_THAT(e, Catch::Contains("bad.csv:1") && Catch::Contains("GeneratedTokens"));
  CHECK_THAT(csv_error(""), Catch::Contains("bad.csv") && Catch::Contains("header"));
  CHECK(csv_error(kHeader + kRow) == "");
}

TEST_CASE("mooncake fixture: arrivals in ms, hash_ids of 512-token blocks", "[workload]") {
  auto reqs = load_workload(trace(kMooncake), 0);
  REQUIRE(reqs.size() == 100);
  check_invariants(reqs);
  CHECK(reqs[0].arrival_s == 0.0);
  CHECK(reqs[0].prompt_len == 6758);
  CHECK(reqs[0].output_len == 500);
  REQUIRE(reqs[0].hash_ids.size() == 14);
  CHECK(reqs[0].hash_ids[13] == 13);
  CHECK(reqs[0].hash_block_tokens == 512);
  CHECK(reqs[10].arrival_s == Approx(3.0));
  CHECK(reqs[10].prompt_len == 13544);
  CHECK(reqs[10].hash_ids.size() == 27);
  CHECK(reqs[10].hash_ids[1] == 219);
  CHECK(reqs[99].arrival_s == Approx(33.0));
  int64_t input = 0;
  size_t blocks = 0;
  for (const auto& r : reqs) input += r.prompt_len, blocks += r.hash_ids.size();
  CHECK(input == 1524742);
  CHECK(blocks == 3034);
}

TEST_CASE("mooncake: malformed lines name file:line, field and value", "[workload]") {
  const std::string ok = R"({"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]})";
  CHECK(jsonl_error(ok + "\n\n" + ok + "\n") == "");
  std::string e = jsonl_error(ok + "\n" + R"({"timestamp": 1, "input_length": 10,)" + "\n");
  CHECK_THAT(e, Catch::Contains("bad.jsonl:2:") && Catch::Contains("invalid JSON"));
  e = jsonl_error(ok + "\n" + R"({"timestamp": 1, "output_length": 2})" + "\n");
  CHECK_THAT(e, Catch::Contains("bad.jsonl:2") && Catch::Contains("input_length") &&
                    Catch::Contains("missing"));
  e = jsonl_error(R"({"timestamp": 1, "input_length": -5, "output_length": 2})");
  CHECK_THAT(e, Catch::Contains("bad.jsonl:1") && Catch::Contains("input_length") &&
                    Catch::Contains("'-5'"));
  e = jsonl_error(ok + "\n" + ok + "\n" + R"({"timestamp": "x", "input_length": 5, "output_length": 2})");
  CHECK_THAT(e, Catch::Contains("bad.jsonl:3") && Catch::Contains("timestamp") &&
                    Catch::Contains("'\"x\"'"));
  e = jsonl_error(R"({"timestamp": 1, "input_length": 5, "output_length": 2.5})");
  CHECK_THAT(e, Catch::Contains("output_length") && Catch::Contains("'2.5'"));
  e = jsonl_error(R"({"timestamp": 1, "input_length": 5, "output_length": 2, "hash_ids": [1, -2]})");
  CHECK_THAT(e, Catch::Contains("hash_ids") && Catch::Contains("'-2'"));
  e = jsonl_error("[1, 2]");
  CHECK_THAT(e, Catch::Contains("bad.jsonl:1") && Catch::Contains("'[1,2]'"));
  // hash_ids are optional; zero output clamps to 1.
  std::istringstream in(R"({"timestamp": 2500, "input_length": 0, "output_length": 0})" "\n"
                        R"({"timestamp": 500, "input_length": 7, "output_length": 3})");
  auto reqs = parse_mooncake_jsonl(in, "mem.jsonl");
  REQUIRE(reqs.size() == 2);
  check_invariants(reqs);
  CHECK(reqs[0].prompt_len == 7);
  CHECK(reqs[1].arrival_s == Approx(2.0));
  CHECK(reqs[1].output_len == 1);
  CHECK(reqs[1].hash_ids.empty());
  CHECK(reqs[1].hash_block_tokens == 0);
}

TEST_CASE("workload files: unknown extension, missing file, empty trace", "[workload]") {
  CHECK_THROWS_WITH(load_workload(trace("/nonexistent/t.csv"), 0),
                    Catch::Contains("/nonexistent/t.csv") && Catch::Contains(".jsonl"));
  CHECK_THROWS_WITH(load_workload(trace(kFixtures + "x.parquet"), 0),
                    Catch::Contains("x.parquet") && Catch::Contains(".csv") &&
                        Catch::Contains("synthetic"));
  auto dir = std::filesystem::temp_directory_path() / "twinfer_test_workload";
  std::filesystem::create_directories(dir);
  std::string empty = (dir / "empty.csv").string();
  std::ofstream(empty) << kHeader;
  CHECK_THROWS_WITH(load_workload(trace(empty), 0), Catch::Contains("no request rows"));
  try {
    load_workload(trace("/nonexistent/t.jsonl"), 0);
  } catch (const ConfigError& e) {
    CHECK(e.exit_code() == 2);
  }
}

TEST_CASE("synthetic poisson: mean rate and determinism", "[workload]") {
  auto a = load_workload(synthetic(20000, 50.0), 42);
  REQUIRE(a.size() == 20000);
  check_invariants(a);
  CHECK(a[0].arrival_s == 0.0);
  double measured = (a.size() - 1) / a.back().arrival_s;
  CHECK(measured == Approx(50.0).epsilon(0.03));
  auto b = load_workload(synthetic(20000, 50.0), 42);
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].arrival_s == b[i].arrival_s);
    REQUIRE(a[i].prompt_len == b[i].prompt_len);
  }
  auto c = load_workload(synthetic(20000, 50.0), 43);
  CHECK(c[100].arrival_s != a[100].arrival_s);
  // arrival "trace" with a synthetic workload means poisson.
  auto t = load_workload(synthetic(20000, 50.0, "trace"), 42);
  CHECK(t[500].arrival_s == a[500].arrival_s);
}

TEST_CASE("synthetic gamma: mean rate and burstiness", "[workload]") {
  for (double shape : {0.25, 1.0, 4.0}) {
    WorkloadConfig w = synthetic(20000, 20.0, "gamma");
    w.burstiness = shape;
    auto reqs = load_workload(w, 3);
    check_invariants(reqs);
    double n = static_cast<double>(reqs.size() - 1), sum = 0, sum2 = 0;
    for (size_t i = 1; i < reqs.size(); ++i) {
      double gap = reqs[i].arrival_s - reqs[i - 1].arrival_s;
      sum += gap;
      sum2 += gap * gap;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(1.0 / mean == Approx(20.0).epsilon(0.05));
    CHECK(var / (mean * mean) == Approx(1.0 / shape).epsilon(0.12));  // CV^2 = 1/shape
  }
}

TEST_CASE("synthetic: offline, counts and argument errors", "[workload]") {
  WorkloadConfig w = synthetic(50, 0.0, "offline");
  auto reqs = load_workload(w, 1);
  REQUIRE(reqs.size() == 50);
  for (const auto& r : reqs) REQUIRE(r.arrival_s == 0.0);
  w.max_requests = 7;
  CHECK(load_workload(w, 1).size() == 7);
  CHECK_THROWS_WITH(load_workload(synthetic(10, 0.0), 1), Catch::Contains("--rate"));
  CHECK_THROWS_WITH(load_workload(synthetic(0, 5.0), 1), Catch::Contains("--num-requests"));
  w = synthetic(10, 5.0);
  w.arrival = "bursty";
  CHECK_THROWS_WITH(load_workload(w, 1), Catch::Contains("--arrival") && Catch::Contains("gamma"));
  w = synthetic(10, 5.0);
  w.input_len = "normal:5:1";
  try {
    load_workload(w, 1);
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("--input-len") &&
                                          Catch::Contains("'normal:5:1'") &&
                                          Catch::Contains("zipf:LO:HI:S"));
    CHECK(e.exit_code() == 2);
  }
}

TEST_CASE("length distributions: parse errors", "[workload]") {
  for (const char* bad : {"", "fixed", "fixed:0", "fixed:1.5", "fixed:3:4", "uniform:5:2",
                          "uniform:1", "lognormal:0:1", "lognormal:100:-1", "zipf:1:10",
                          "zipf:10:1:1", "zipf:1:10:x", "fixed:99999999", "fixed: 3"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH(LengthDist::parse(bad, "--output-len"),
                      Catch::Contains("--output-len") && Catch::Contains("fixed:N"));
  }
  LengthDist d = LengthDist::parse("zipf:2:50:1.5", "--input-len");
  CHECK(d.kind == LengthDist::Kind::zipf);
  CHECK(d.a == 2);
  CHECK(d.b == 50);
  CHECK(d.c == 1.5);
}

namespace {

std::vector<int32_t> draw(const std::string& dist, int64_t n, uint64_t seed = 11) {
  WorkloadConfig w = synthetic(n, 0.0, "offline");
  w.input_len = dist;
  std::vector<int32_t> out;
  for (const auto& r : load_workload(w, seed)) out.push_back(r.prompt_len);
  return out;
}

}  // namespace

TEST_CASE("length distributions: ranges and shapes", "[workload]") {
  for (int32_t v : draw("fixed:321", 100)) REQUIRE(v == 321);

  auto u = draw("uniform:10:20", 20000);
  CHECK(*std::min_element(u.begin(), u.end()) == 10);
  CHECK(*std::max_element(u.begin(), u.end()) == 20);
  std::map<int32_t, int> hist;
  for (int32_t v : u) hist[v]++;
  for (auto [v, count] : hist) CHECK(count == Approx(20000 / 11.0).epsilon(0.1));

  auto ln = draw("lognormal:1000:0.5", 20000);
  std::sort(ln.begin(), ln.end());
  CHECK(ln.front() >= 1);
  CHECK(ln[ln.size() / 2] == Approx(1000).epsilon(0.03));  // median
  CHECK(ln[static_cast<size_t>(ln.size() * 0.8413)] == Approx(1000 * std::exp(0.5)).epsilon(0.04));
  for (int32_t v : draw("lognormal:2:3", 5000)) REQUIRE(v >= 1);
}

TEST_CASE("length distributions: bounded zipf matches its pmf", "[workload]") {
  struct Case { int lo, hi; double s; };
  for (Case c : {Case{1, 10, 1.0}, Case{3, 12, 1.2}, Case{50, 60, 0.5}, Case{1, 8, 2.5},
                 Case{5, 9, 0.0}}) {
    const int n = 100000;
    auto z = draw("zipf:" + std::to_string(c.lo) + ":" + std::to_string(c.hi) + ":" +
                      std::to_string(c.s), n);
    std::map<int32_t, int> hist;
    for (int32_t v : z) {
      REQUIRE(v >= c.lo);
      REQUIRE(v <= c.hi);
      hist[v]++;
    }
    double norm = 0;
    for (int k = c.lo; k <= c.hi; ++k) norm += std::pow(k, -c.s);
    for (int k = c.lo; k <= c.hi; ++k) {
      double p = std::pow(k, -c.s) / norm, expect = n * p;
      double sd = std::sqrt(n * p * (1 - p));
      CAPTURE(c.lo, c.hi, c.s, k, hist[k], expect);
      CHECK(std::abs(hist[k] - expect) < 5 * sd + 1);
    }
  }
  // Wide range: no table, still bounded, and heavily skewed to LO.
  auto wide = draw("zipf:1:10000000:1.1", 20000);
  CHECK(*std::max_element(wide.begin(), wide.end()) <= 10000000);
  CHECK(std::count(wide.begin(), wide.end(), 1) > 20000 / 20);
}

TEST_CASE("synthetic prefix: shared leading hash blocks, unique tails", "[workload]") {
  WorkloadConfig w = synthetic(20, 5.0);
  w.input_len = "uniform:10:200";
  w.prefix_len = 100;  // 6 whole 16-token blocks shared
  auto reqs = load_workload(w, 9);
  std::map<BlockHash, int> uses;
  for (const auto& r : reqs) {
    REQUIRE(r.prompt_len >= 100);
    REQUIRE(r.hash_block_tokens == 16);
    REQUIRE(r.hash_ids.size() == static_cast<size_t>((r.prompt_len + 15) / 16));
    for (size_t b = 0; b < 6; ++b) REQUIRE(r.hash_ids[b] == b);
    for (BlockHash h : r.hash_ids) uses[h]++;
  }
  for (auto [h, count] : uses) {
    if (h < 6) CHECK(count == 20);
    else CHECK(count == 1);
  }
  auto none = load_workload(synthetic(5, 5.0), 9);
  CHECK(none[0].hash_ids.empty());
  CHECK(none[0].prompt_len == 512);  // defaults: fixed:512 in, fixed:128 out
  CHECK(none[0].output_len == 128);
}
