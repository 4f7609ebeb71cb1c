// `twinfer compare`, calibration profiles, the requests.csv replay workload, and the prefix-cache
// hit rate (hits over every block looked up).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "app/commands.h"
#include "app/run.h"
#include "core/block_manager.h"
#include "core/error.h"
#include "core/workload.h"
#include "policies/registry.h"
#include "sim/profile.h"

using namespace twinfer;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("twinfer_compare_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A busy sim run: a small KV pool forces preemptions, a shared prefix exercises the cache.
RunConfig busy_run(const fs::path& out) {
  RunConfig c;
  c.backend = "sim";
  c.model = "llama-3-8b";
  c.out = out.string();
  c.seed = 7;
  c.workload.workload = "synthetic";
  c.workload.num_requests = 60;
  c.workload.rate = 40;
  c.workload.input_len = "uniform:200:700";
  c.workload.output_len = "uniform:20:200";
  c.workload.prefix_len = 128;
  c.engine.enable_prefix_caching = true;
  c.engine.num_gpu_blocks_override = 300;
  c.engine.max_model_len = 2048;
  return c;
}

std::string error_of(const std::vector<std::string>& args) {
  try {
    cmd_compare(args);
  } catch (const ConfigError& e) {
    CHECK(e.exit_code() == 2);
    return e.what();
  }
  FAIL("expected a ConfigError");
  return "";
}

HwProfile llama_profile() {
  HwProfile p;
  p.twinfer_version = twinfer_version();
  p.model = ModelFingerprint::of(resolve_model("llama-3-8b"));
  p.gpu = "h100-sxm";
  p.kv_cache_dtype = "bf16";
  p.created = utc_timestamp_now();
  p.params.gemm_flops_eff = 0.6;
  return p;
}

}  // namespace

TEST_CASE("a sim run compared against itself has ~0 error on every metric", "[compare]") {
  const fs::path hw = fresh_dir("self"), twin = hw / "twin";
  RunOptions quiet;
  quiet.quiet = true;
  const RunResult base = run_config(busy_run(hw), quiet);
  REQUIRE(base.summary.finished == 60);
  REQUIRE(base.summary.preemptions > 0);  // the comparison covers preemption replay too
  REQUIRE(base.summary.prefix_cache_hit_rate > 0);

  REQUIRE(cmd_compare({hw.string(), "--out", twin.string(), "--json", "--quiet"}) == 0);
  REQUIRE(fs::exists(twin / "summary.json"));
  REQUIRE(fs::exists(twin / "requests.csv"));
  // Prefix identities came from the run's own workload (synthetic, same seed).
  REQUIRE(fs::exists(twin / "replay_requests.csv"));
  const Json cmp = Json::parse_file((twin / "compare.json").string());
  const auto& metrics = cmp.get("metrics")->as_array();
  REQUIRE(metrics.size() == 10);
  for (const Json& m : metrics) {
    INFO(m.dump());
    REQUIRE(m.get("rel_error")->is_number());
    CHECK(std::fabs(m.get("rel_error")->as_number()) < 1e-4);
  }
  const Summary again = Summary::from_json(Json::parse_file((twin / "summary.json").string()), "twin");
  CHECK(again.preemptions == base.summary.preemptions);
  CHECK(again.kv_blocks_peak == base.summary.kv_blocks_peak);
  CHECK(again.prefix_cache_hit_rate == Approx(base.summary.prefix_cache_hit_rate));
}

TEST_CASE("compare replays produced output lengths, not the targets", "[compare]") {
  // A hardware run whose requests stopped early at EOS: output_len < target_len.
  const fs::path dir = fresh_dir("eos");
  std::ofstream(dir / "requests.csv")
      << "id,status,priority,prompt_len,output_len,target_len,arrival_s,first_scheduled_s,"
         "first_token_s,last_token_s,finished_s,num_preemptions,prefix_hit_tokens,error\n"
         "0,finished,0,100,7,50,0.000000,0,0.1,0.2,0.2,0,0,\n"
         "1,failed,0,90,0,40,0.500000,,,,,0,0,\"prompt, too \"\"long\"\"\nreally\"\n"
         "2,finished,1,80,12,-1,0.250000,0,0.3,0.4,0.4,0,0,\n";
  std::ifstream in(dir / "requests.csv");
  const auto reqs = parse_requests_csv(in, "requests.csv");
  REQUIRE(reqs.size() == 3);
  // Sorted by arrival, renumbered.
  CHECK(reqs[0].prompt_len == 100);
  CHECK(reqs[0].output_len == 7);
  CHECK(reqs[0].sampling.max_tokens == 7);
  CHECK(reqs[0].sampling.ignore_eos);
  CHECK(reqs[1].prompt_len == 80);
  CHECK(reqs[1].arrival_s == 0.25);
  CHECK(reqs[1].priority == 1);
  CHECK(reqs[1].id == 1);
  CHECK(reqs[2].prompt_len == 90);  // failed: replayed at its target length
  CHECK(reqs[2].output_len == 40);
}

TEST_CASE("the requests replay round-trips and rejects malformed rows with file:line", "[compare]") {
  std::vector<RequestSpec> reqs(2);
  reqs[0].prompt_len = 33;
  reqs[0].output_len = 5;
  reqs[0].arrival_s = 0.1 + 0.2;  // not representable in 6 decimals
  reqs[0].hash_ids = {4, 5, 18446744073709551615ULL};
  reqs[0].hash_block_tokens = 16;
  reqs[1].id = 1;
  reqs[1].prompt_len = 7;
  reqs[1].output_len = 1;
  reqs[1].arrival_s = 2;
  std::stringstream ss;
  write_requests_csv(ss, reqs);
  const auto back = parse_requests_csv(ss, "x.csv");
  REQUIRE(back.size() == 2);
  CHECK(back[0].arrival_s == reqs[0].arrival_s);
  CHECK(back[0].hash_ids == reqs[0].hash_ids);
  CHECK(back[0].hash_block_tokens == 16);
  CHECK(back[1].hash_ids.empty());

  auto bad = [](const std::string& text) {
    std::stringstream in(text);
    try {
      parse_requests_csv(in, "run/requests.csv");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "id,status,prompt_len,output_len,target_len,arrival_s\n";
  CHECK_THAT(bad(head + "0,finished,10,5,5,0\n1,finished,x,5,5,1\n"),
             Catch::Contains("run/requests.csv:3") && Catch::Contains("prompt_len") &&
                 Catch::Contains("'x'"));
  CHECK_THAT(bad(head + "0,done,10,5,5,0\n"), Catch::Contains(":2") && Catch::Contains("status"));
  CHECK_THAT(bad(head + "0,finished,10,5,5,-1\n"), Catch::Contains("arrival_s"));
  CHECK_THAT(bad(head + "0,finished,10,5\n"), Catch::Contains(":2") && Catch::Contains("fields"));
  CHECK_THAT(bad("id,status,prompt_len\n"), Catch::Contains(":1") && Catch::Contains("output_len"));
  CHECK_THAT(bad(head + "0,finished,10,5,5,0\n0,finished,10,5,5,1\n"), Catch::Contains("id 0 appears twice"));
  CHECK_THAT(bad(head + "\"0,finished,10,5,5,0\n"), Catch::Contains("unterminated"));

  // Through load_workload as --workload requests:PATH.
  const fs::path dir = fresh_dir("wl");
  std::ofstream(dir / "r.csv") << head << "0,finished,10,5,5,0.5\n1,finished,12,3,3,0.25\n";
  WorkloadConfig w;
  w.workload = "requests:" + (dir / "r.csv").string();
  const auto loaded = load_workload(w, 0);
  REQUIRE(loaded.size() == 2);
  CHECK(loaded[0].prompt_len == 12);
  CHECK(loaded[0].arrival_s == 0.25);
}

TEST_CASE("compare names every missing file of a run folder", "[compare]") {
  const fs::path hw = fresh_dir("missing");
  RunOptions quiet;
  quiet.quiet = true;
  RunConfig c = busy_run(hw);
  c.workload.num_requests = 5;
  run_config(c, quiet);
  fs::remove(hw / "summary.json");
  std::string msg = error_of({hw.string(), "--quiet"});
  CHECK_THAT(msg, Catch::Contains("missing summary.json ("));
  fs::remove(hw / "requests.csv");
  msg = error_of({hw.string(), "--quiet"});
  CHECK_THAT(msg, Catch::Contains("missing summary.json, requests.csv ("));
  CHECK_THAT(error_of({(hw / "nope").string()}), Catch::Contains("not a folder"));

  // The binary exits 2 with the message.
  const std::string cmd = std::string(TWINFER_BINARY) + " compare " + hw.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::array<char, 4096> buf{};
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  CHECK(WEXITSTATUS(st) == 2);
  CHECK_THAT(out, Catch::Contains("missing summary.json, requests.csv"));
}

TEST_CASE("profiles carry a header and are refused for another model, gpu or version", "[compare]") {
  const fs::path dir = fresh_dir("profile");
  const HwProfile good = llama_profile();
  good.save((dir / "good.json").string());
  const HwProfile back = HwProfile::load((dir / "good.json").string());
  CHECK(back.params.gemm_flops_eff == 0.6);
  CHECK(back.gpu == "h100-sxm");
  CHECK(back.model.num_kv_heads == good.model.num_kv_heads);

  const ProfileTarget llama{ModelFingerprint::of(resolve_model("llama-3-8b")), "h100-sxm", "",
                            twinfer_version()};
  CHECK(profile_mismatches(back, llama).empty());

  HwProfile other_model = good;
  other_model.model = ModelFingerprint::of(resolve_model("llama-2-70b"));
  other_model.save((dir / "model.json").string());
  HwProfile other_gpu = good;
  other_gpu.gpu = "a100-80g";
  other_gpu.save((dir / "gpu.json").string());
  HwProfile other_version = good;
  other_version.twinfer_version = "999.1.0";
  other_version.save((dir / "version.json").string());

  auto refusal = [&](const std::string& file) {
    try {
      load_compatible_profile((dir / file).string(), llama);
    } catch (const ConfigError& e) {
      CHECK(e.exit_code() == 2);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string m = refusal("model.json");
  CHECK_THAT(m, Catch::Contains("model.num_layers") && Catch::Contains("model.hidden_size"));
  CHECK_THAT(m, !Catch::Contains("gpu"));
  CHECK_THAT(refusal("gpu.json"), Catch::Contains("gpu: profile 'a100-80g', run 'h100-sxm'"));
  CHECK_THAT(refusal("version.json"), Catch::Contains("twinfer_version: profile 999.1.0"));
  CHECK(version_major_minor("0.3.1") == "0.3");

  // A device name recorded on both sides must agree too.
  HwProfile dev = good;
  dev.gpu_name = "NVIDIA H100 PCIe";
  ProfileTarget sxm = llama;
  sxm.gpu_name = "NVIDIA H100 80GB HBM3";
  CHECK(profile_mismatches(dev, sxm).size() == 1);

  // A params-only file lacks the header.
  std::ofstream(dir / "bare.json") << "{\"gemm_flops_eff\": 0.5}";
  CHECK_THAT(refusal("bare.json"), Catch::Contains("missing field 'twinfer_version'"));

  // Through a run and through compare.
  RunOptions quiet;
  quiet.quiet = true;
  RunConfig c = busy_run(dir / "run");
  c.workload.num_requests = 5;
  c.hw_profile = (dir / "gpu.json").string();
  try {
    run_config(c, quiet);
    FAIL("a profile for another gpu was accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("gpu: profile 'a100-80g'"));
  }
  c.hw_profile = (dir / "good.json").string();
  const RunResult withp = run_config(c, quiet);
  c.hw_profile.clear();
  const RunResult without = run_config(c, quiet);
  CHECK(withp.summary.duration_s != without.summary.duration_s);  // the params took effect
  CHECK_THAT(error_of({(dir / "run").string(), "--quiet", "--hw-profile", (dir / "model.json").string()}),
             Catch::Contains("model.num_layers"));
}

TEST_CASE("prefix-cache hit rate counts every block looked up, not only the hits", "[compare]") {
  BlockManagerConfig bc;
  bc.num_gpu_blocks = 64;
  bc.block_size = 4;
  bc.enable_prefix_caching = true;
  auto ev = make_eviction_policy("lru");
  BlockManager bm(bc, ev.get(), nullptr);
  const std::vector<BlockHash> a = {1, 2, 3, 4}, b = {1, 2, 9, 10};
  bm.allocate(1, 16, {}, 4);  // nothing cached yet: 4 blocks looked up, 0 found
  bm.cache_blocks(1, 0, a);
  const int32_t hits = bm.count_prefix_hits(b);
  REQUIRE(hits == 2);
  bm.allocate(2, 16, std::span<const BlockHash>(b.data(), 2), 4);
  CHECK(bm.prefix_queries() == 8);
  CHECK(bm.prefix_hits() == 2);

  // End to end: a 64-token shared prefix of ~640-token prompts is ~10% of the prompt blocks.
  RunConfig c;
  c.workload.num_requests = 30;
  c.workload.rate = 5;
  c.workload.input_len = "fixed:640";
  c.workload.output_len = "fixed:8";
  c.workload.prefix_len = 64;
  c.engine.enable_prefix_caching = true;
  RunOptions quiet;
  quiet.quiet = true;
  const RunResult r = run_config(c, quiet);
  int64_t hit_blocks = 0, prompt_blocks = 0;
  for (const RequestRecord& q : r.record.requests) {
    hit_blocks += q.prefix_hit_tokens / c.engine.block_size;
    prompt_blocks += q.prompt_len / c.engine.block_size;
  }
  REQUIRE(r.summary.preemptions == 0);
  CHECK(r.summary.prefix_cache_hit_rate ==
        Approx(static_cast<double>(hit_blocks) / static_cast<double>(prompt_blocks)));
  CHECK(r.summary.prefix_cache_hit_rate < 0.2);
  CHECK(r.summary.prefix_cache_hit_rate > 0.05);
}
