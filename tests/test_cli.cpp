// End-to-end checks of the `twinfer` binary as a user runs it: exit codes and messages.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result twinfer(const std::string& args) {
  const std::string cmd = std::string(TWINFER_BINARY) + " " + args + " 2>&1";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kTrace = std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/azure_conv_head.csv";

}  // namespace

TEST_CASE("invalid flag values exit 2 naming the flag and the allowed values", "[cli]") {
  auto r = twinfer("run --max-num-seqs abc");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("--max-num-seqs") && Catch::Contains("integer"));
  r = twinfer("run --preemption-mode drop");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("recompute, swap"));
  r = twinfer("run --gpu-memory-utilization 1.5");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("gpu-memory-utilization"));
  r = twinfer("run --no-such-flag 3");
  CHECK(r.code == 2);
  r = twinfer("frobnicate");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown command"));
}

TEST_CASE("unknown presets list the known ones", "[cli]") {
  auto r = twinfer("run --model llama-9 --workload " + kTrace);
  CHECK(r.code != 0);
  CHECK_THAT(r.out, Catch::Contains("llama-3-8b") && Catch::Contains("smollm2-135m"));
  r = twinfer("run --hardware tpu --workload " + kTrace);
  CHECK(r.code != 0);
  CHECK_THAT(r.out, Catch::Contains("h100-sxm") && Catch::Contains("rtx4090"));
}

TEST_CASE("configs that cannot run are refused with the numbers", "[cli]") {
  auto r = twinfer("run --model llama-3-70b --hardware a100-40g --workload " + kTrace);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("does not fit") && Catch::Contains("GiB"));
  r = twinfer("run --model llama-3-8b --hardware rtx4090 --max-model-len 8192 --gpu-memory-utilization 0.7 --workload " + kTrace);
  CHECK(r.code != 0);
  r = twinfer("run --num-gpu-blocks-override 10 --max-model-len 4096 --workload " + kTrace);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("beyond the KV pool") && Catch::Contains("160 tokens"));
}

TEST_CASE("a malformed trace is reported as file:line with the column and value", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path() / "twinfer_cli_bad";
  std::filesystem::create_directories(dir);
  const auto bad = dir / "bad.csv";
  std::ofstream(bad) << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                        "2023-11-16 18:15:46.6805900,374,44\n"
                        "2023-11-16 18:15:50.9951690,x12,109\n";
  auto r = twinfer("run --workload " + bad.string());
  CHECK(r.code != 0);
  CHECK_THAT(r.out, Catch::Contains("bad.csv:3") && Catch::Contains("ContextTokens") && Catch::Contains("x12"));
}

TEST_CASE("a run writes every output and --config repeats it exactly", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path() / "twinfer_cli_run";
  std::filesystem::remove_all(dir);
  auto r = twinfer("run --workload " + kTrace + " --max-num-seqs 8 --enable-chunked-prefill --out " + (dir / "a").string());
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("TTFT") && Catch::Contains("throughput"));
  for (const char* f : {"config.json", "summary.json", "requests.csv", "steps.csv", "kv_events.csv", "trace.json"})
    CHECK(std::filesystem::exists(dir / "a" / f));
  r = twinfer("run --config " + (dir / "a" / "config.json").string() + " --out " + (dir / "b").string());
  REQUIRE(r.code == 0);
  CHECK(slurp(dir / "a" / "steps.csv") == slurp(dir / "b" / "steps.csv"));
  CHECK(slurp(dir / "a" / "kv_events.csv") == slurp(dir / "b" / "kv_events.csv"));
  // Flags given after --config override it.
  r = twinfer("run --config " + (dir / "a" / "config.json").string() + " --max-num-seqs 2 --out " + (dir / "c").string());
  REQUIRE(r.code == 0);
  CHECK(slurp(dir / "a" / "steps.csv") != slurp(dir / "c" / "steps.csv"));
  CHECK_THAT(slurp(dir / "c" / "config.json"), Catch::Contains("\"max-num-seqs\": 2"));
}

TEST_CASE("--help lists every flag with its default", "[cli]") {
  auto r = twinfer("run --help");
  CHECK(r.code == 0);
  for (const char* f : {"--block-size", "--gpu-memory-utilization", "--max-num-batched-tokens",
                        "--enable-chunked-prefill", "--kv-cache-dtype", "--enforce-eager",
                        "--swap-space", "--scheduling-policy", "--tensor-parallel-size", "--workload"})
    CHECK_THAT(r.out, Catch::Contains(f));
  CHECK_THAT(r.out, Catch::Contains("[default: 16]"));
}
