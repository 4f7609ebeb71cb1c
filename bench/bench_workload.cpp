// Workload loading sits at the start of every run and experiment sweep: the full Azure trace
// (19,366 rows) must parse well under 50 ms, and 1M synthetic requests generate well under 2 s.
// The real traces live outside the repository (../shared/data/traces beside the checkout, or
// $TWINFER_TRACE_DIR); the trace benchmarks skip when they are absent.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/workload.h"

namespace {

std::string trace_path(const char* name) {
  const char* env = std::getenv("TWINFER_TRACE_DIR");
  std::filesystem::path dir = env ? std::filesystem::path(env)
                                  : std::filesystem::path(TWINFER_SOURCE_DIR) / ".." / "shared" /
                                        "data" / "traces";
  return (dir / name).string();
}

// Parses from memory so the numbers measure the parser, not the disk.
template <class Parse>
void bench_trace(benchmark::State& state, const char* name, Parse parse) {
  std::string path = trace_path(name);
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    state.SkipWithError(("trace not found: " + path).c_str());
    return;
  }
  std::stringstream buf;
  buf << f.rdbuf();
  const std::string text = buf.str();
  size_t rows = 0;
  for (auto _ : state) {
    std::istringstream in(text);
    auto reqs = parse(in, path);
    rows = reqs.size();
    benchmark::DoNotOptimize(reqs.data());
  }
  state.counters["rows"] = static_cast<double>(rows);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_ParseAzureConv(benchmark::State& state) {
  bench_trace(state, "azure_llm_2023_conv.csv", twinfer::parse_azure_csv);
}

void BM_ParseMooncakeConversation(benchmark::State& state) {
  bench_trace(state, "mooncake_conversation.jsonl", twinfer::parse_mooncake_jsonl);
}

// state.range(0): prefix_len (0: no hash_ids; > 0 adds per-block hash ids).
void BM_SyntheticMillion(benchmark::State& state) {
  twinfer::WorkloadConfig w;
  w.workload = "synthetic";
  w.arrival = "gamma";
  w.rate = 100;
  w.burstiness = 0.5;
  w.num_requests = 1000000;
  w.input_len = "lognormal:1024:0.8";
  w.output_len = "zipf:1:2048:1.1";
  w.prefix_len = static_cast<int32_t>(state.range(0));
  for (auto _ : state) {
    auto reqs = twinfer::load_workload(w, 1);
    benchmark::DoNotOptimize(reqs.data());
  }
  state.SetItemsProcessed(state.iterations() * w.num_requests);
}

}  // namespace

BENCHMARK(BM_ParseAzureConv)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseMooncakeConversation)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SyntheticMillion)->Arg(0)->Arg(256)->Unit(benchmark::kMillisecond);
