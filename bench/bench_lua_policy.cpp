// Cost of a Lua policy against its C++ twin: the whole Azure conversation trace (19,366
// requests) through the simulator, once with the built-in policy and once with the Lua file
// that reproduces it. The bound: Lua FCFS within 3x the wall time of C++ FCFS.
// FCFS keys are computed once per admission; SJF with aging is time-dependent, so its key runs
// for every waiting request every step (the worst case for a scripted queue order): its pair
// replays the first 4,000 requests 4x faster (time_scale 0.25) so a queue builds up.
// The trace lives outside the repository (../shared/data/traces beside the checkout, or
// $TWINFER_TRACE_DIR); the benchmarks skip when it is absent.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "app/run.h"
#include "core/lua_policy.h"
#include "policies/registry.h"

namespace {

std::string trace_path() {
  const char* env = std::getenv("TWINFER_TRACE_DIR");
  std::filesystem::path dir = env ? std::filesystem::path(env)
                                  : std::filesystem::path(TWINFER_SOURCE_DIR) / ".." / "shared" /
                                        "data" / "traces";
  return (dir / "azure_llm_2023_conv.csv").string();
}

void bench_policy(benchmark::State& state, const std::string& queue, double time_scale,
                  int64_t max_requests = 0) {
  const std::string trace = trace_path();
  if (!std::filesystem::exists(trace)) {
    state.SkipWithError(("trace not found: " + trace).c_str());
    return;
  }
  twinfer::register_lua_policies();
  twinfer::RunConfig cfg;
  cfg.workload.workload = trace;
  cfg.workload.time_scale = time_scale;
  cfg.workload.max_requests = max_requests;
  cfg.engine.scheduling_policy = queue;
  twinfer::RunOptions opt;
  opt.quiet = true;
  opt.kv_events = false;
  int64_t steps = 0;
  for (auto _ : state) {
    twinfer::RunResult r = twinfer::run_config(cfg, opt);
    steps = r.summary.steps;
    benchmark::DoNotOptimize(steps);
  }
  state.counters["steps"] = static_cast<double>(steps);
}

std::string script(const char* name) {
  return std::string("lua:") + TWINFER_SOURCE_DIR + "/scripts/lua/" + name;
}

void BM_Fcfs_Cpp(benchmark::State& s) { bench_policy(s, "fcfs", 1.0); }
void BM_Fcfs_Lua(benchmark::State& s) { bench_policy(s, script("fcfs.lua"), 1.0); }
void BM_Sjf_Cpp_Compressed(benchmark::State& s) { bench_policy(s, "sjf", 0.25, 4000); }
void BM_SjfAging_Lua_Compressed(benchmark::State& s) {
  bench_policy(s, script("sjf_aging.lua"), 0.25, 4000);
}

// One key() call in isolation: the per-call overhead of the binding (protected call, view
// table refill) plus the script.
void bench_key(benchmark::State& state, std::unique_ptr<twinfer::QueuePolicy> p) {
  twinfer::RequestView v;
  v.prompt_len = 300;
  v.max_tokens = 100;
  double now = 0;
  for (auto _ : state) {
    v.id++;
    v.arrival_s = now;
    now += 0.001;
    benchmark::DoNotOptimize(p->key(v, now));
  }
}

void BM_KeyCall_Cpp(benchmark::State& s) { bench_key(s, twinfer::make_queue_policy("sjf")); }
void BM_KeyCall_LuaFcfs(benchmark::State& s) {
  bench_key(s, twinfer::make_lua_queue_policy(TWINFER_SOURCE_DIR "/scripts/lua/fcfs.lua"));
}
void BM_KeyCall_LuaSjfAging(benchmark::State& s) {
  bench_key(s, twinfer::make_lua_queue_policy(TWINFER_SOURCE_DIR "/scripts/lua/sjf_aging.lua"));
}

}  // namespace

BENCHMARK(BM_KeyCall_Cpp);
BENCHMARK(BM_KeyCall_LuaFcfs);
BENCHMARK(BM_KeyCall_LuaSjfAging);
BENCHMARK(BM_Fcfs_Cpp)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Fcfs_Lua)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Sjf_Cpp_Compressed)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_SjfAging_Lua_Compressed)->Unit(benchmark::kMillisecond)->MinTime(1.0);
