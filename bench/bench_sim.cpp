// Simulator speed targets (issue: the Azure conversation trace in under 1 s, a million synthetic
// requests in under 60 s, on the 2-core CI machine). Outputs are not written: this measures the
// engine, scheduler, block manager and cost model; bench_outputs covers the writers.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "app/run.h"

using namespace twinfer;

namespace {

std::string azure_trace() {
  const char* env = std::getenv("TWINFER_TRACE_DIR");
  std::filesystem::path dir = env ? env : std::string(TWINFER_SOURCE_DIR) + "/../shared/data/traces";
  return (dir / "azure_llm_2023_conv.csv").string();
}

void run_and_count(benchmark::State& state, const RunConfig& cfg, bool kv_events) {
  RunOptions opt;
  opt.quiet = true;
  opt.kv_events = kv_events;
  opt.write_outputs = false;
  int64_t steps = 0, reqs = 0;
  for (auto _ : state) {
    RunResult r = run_config(cfg, opt);
    steps = r.summary.steps;
    reqs = r.summary.requests;
    benchmark::DoNotOptimize(r.summary.output_tok_per_s);
  }
  state.counters["steps"] = static_cast<double>(steps);
  state.counters["requests"] = static_cast<double>(reqs);
}

void BM_SimAzureConversation(benchmark::State& state) {
  const std::string trace = azure_trace();
  if (!std::filesystem::exists(trace)) {
    state.SkipWithError(("trace not found: " + trace + " (set TWINFER_TRACE_DIR)").c_str());
    return;
  }
  RunConfig cfg;
  cfg.workload.workload = trace;
  run_and_count(state, cfg, state.range(0) != 0);
}
BENCHMARK(BM_SimAzureConversation)->Arg(0)->Arg(1)->ArgName("kv_events")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SimMillionSynthetic(benchmark::State& state) {
  RunConfig cfg;
  cfg.workload.workload = "synthetic";
  cfg.workload.arrival = "poisson";
  cfg.workload.rate = 40;
  cfg.workload.num_requests = state.range(0);
  cfg.workload.input_len = "lognormal:512:0.8";
  cfg.workload.output_len = "lognormal:128:0.8";
  cfg.engine.max_model_len = 8192;
  run_and_count(state, cfg, false);
}
BENCHMARK(BM_SimMillionSynthetic)->Arg(1000000)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
