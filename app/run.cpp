#include "app/run.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <unistd.h>

#include "core/driver.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/workload.h"
#include "policies/registry.h"
#include "sim/cost_model.h"
#include "sim/hardware.h"
#include "sim/profile.h"

namespace twinfer {

namespace {

std::map<std::string, ExecutorFactory>& backends() {
  static std::map<std::string, ExecutorFactory> m;
  return m;
}

void print_progress(size_t done, size_t total) {
  const int width = 40;
  const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(frac * width);
  std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu requests", fill,
               "========================================", width - fill, "", done, total);
  std::fflush(stderr);
}

}  // namespace

void register_backend(const std::string& name, ExecutorFactory f) { backends()[name] = std::move(f); }

void materialize_prompt_tokens(std::vector<RequestSpec>& reqs, int64_t vocab, uint64_t seed) {
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  if (vocab <= 0) return;
  for (auto& r : reqs) {
    if (!r.prompt_tokens.empty()) continue;
    r.prompt_tokens.resize(static_cast<size_t>(r.prompt_len));
    for (int32_t i = 0; i < r.prompt_len; ++i) {
      uint64_t key;
      const int64_t hb = r.hash_block_tokens;
      if (hb > 0 && static_cast<size_t>(i / hb) < r.hash_ids.size())
        key = mix(r.hash_ids[static_cast<size_t>(i / hb)] * 131 + static_cast<uint64_t>(i % hb));
      else
        key = mix(mix(seed ^ 0xabcdef) ^ static_cast<uint64_t>(r.id) * 0x100000001b3ULL ^ static_cast<uint64_t>(i));
      r.prompt_tokens[static_cast<size_t>(i)] = static_cast<int32_t>(key % static_cast<uint64_t>(vocab));
    }
  }
}

EngineOptions make_engine_options(const RunConfig& cfg, const ModelSpec& model,
                                  const MemoryPlan& mp, bool kv_events) {
  EngineOptions eo;
  eo.sched.max_num_seqs = cfg.engine.max_num_seqs;
  eo.sched.max_num_batched_tokens = mp.max_num_batched_tokens;
  eo.sched.max_model_len = mp.max_model_len;
  eo.sched.chunked_prefill = cfg.engine.enable_chunked_prefill;
  eo.sched.swap_preemption = cfg.engine.preemption_mode == "swap";
  eo.sched.static_batching = cfg.engine.batching == "static";
  eo.sched.prefix_caching = cfg.engine.enable_prefix_caching;
  eo.sched.watermark_blocks = static_cast<int32_t>(0.01 * mp.num_gpu_blocks);
  eo.blocks.num_gpu_blocks = mp.num_gpu_blocks;
  eo.blocks.num_cpu_blocks = mp.num_cpu_blocks;
  eo.blocks.block_size = cfg.engine.block_size;
  eo.blocks.enable_prefix_caching = cfg.engine.enable_prefix_caching;
  eo.seed = cfg.seed;
  eo.record_kv_events = kv_events;
  eo.eos_ids = model.eos_token_ids;
  eo.vocab_size = model.vocab_size;
  return eo;
}

std::unique_ptr<SimExecutor> make_sim_executor(const RunConfig& cfg, const ModelSpec& model,
                                               const HardwareSpec& hw, const MemoryPlan& mp) {
  CostParams params;
  if (!cfg.hw_profile.empty())
    params = load_compatible_profile(cfg.hw_profile, {ModelFingerprint::of(model), hw.name,
                                                      "", twinfer_version()})
                 .params;
  const DType wdt = parse_dtype(cfg.dtype).value_or(model.dtype);
  // The row counts the CUDA executor warms up before serving (RowHistory).
  RowHistory rows(cfg.engine.enforce_eager, cfg.engine.max_num_seqs,
                  std::max(mp.max_num_batched_tokens, cfg.engine.max_num_seqs));
  return std::make_unique<SimExecutor>(CostModel(model, hw, params, wdt, mp.kv_dtype,
                                                 cfg.engine.tensor_parallel_size,
                                                 cfg.engine.enforce_eager),
                                       std::move(rows));
}

RunResult run_config(const RunConfig& cfg, const RunOptions& opt) {
  cfg.validate();
  RunResult out;
  ModelSpec model = resolve_model(cfg.model);
  HardwareSpec hw = resolve_hardware(cfg.hardware);
  RunConfig eff = cfg;
  if (cfg.backend == "cpu" && cfg.engine.num_gpu_blocks_override == 0) {
    // The CPU reference keeps an fp32 pool in host memory: size it for what a CPU run can use
    // rather than for the simulated GPU's memory.
    const int64_t max_len = cfg.engine.max_model_len > 0 ? cfg.engine.max_model_len : model.max_position_embeddings;
    const int64_t tokens = std::max<int64_t>(32768, max_len);
    eff.engine.num_gpu_blocks_override = static_cast<int32_t>((tokens + cfg.engine.block_size - 1) / cfg.engine.block_size);
  }
  out.memory = plan_memory(model, hw.memory_bytes, eff);

  std::vector<RequestSpec> requests = load_workload(cfg.workload, cfg.seed);
  if (cfg.backend != "sim") materialize_prompt_tokens(requests, model.vocab_size, cfg.seed);
  for (RequestSpec& r : requests) {
    r.sampling.temperature = cfg.workload.temperature;
    r.sampling.top_p = cfg.workload.top_p;
    r.sampling.top_k = cfg.workload.top_k;
  }

  auto queue = make_queue_policy(cfg.engine.scheduling_policy);
  auto victim = make_victim_policy(cfg.engine.preemption_victim);
  auto eviction = make_eviction_policy(cfg.engine.eviction_policy);

  std::unique_ptr<Executor> exec;
  if (cfg.backend == "sim") {
    exec = make_sim_executor(cfg, model, hw, out.memory);
  } else {
    auto it = backends().find(cfg.backend);
    if (it == backends().end())
      throw ConfigError("--backend " + cfg.backend + " is not available in this build", 2);
    exec = it->second(cfg, model, out.memory);
  }
  const MemoryPlan& mp = out.memory;
  if (!opt.quiet) std::fprintf(stderr, "%s\n", mp.describe().c_str());

  EngineOptions eo = make_engine_options(cfg, model, mp, opt.kv_events);
  Engine engine(eo, *exec, *queue, *victim, eviction.get());

  // Hardware runs replay arrivals in real time and measure steps; the simulator jumps.
  std::unique_ptr<Clock> clock;
  if (cfg.backend == "sim") clock = std::make_unique<VirtualClock>();
  else clock = std::make_unique<WallClock>();

  DriverOptions dopt;
  const bool tty = opt.progress && isatty(STDERR_FILENO);
  if (tty) dopt.progress = print_progress;
  const auto t0 = std::chrono::steady_clock::now();
  // A device failure mid-run (CUDA error) ends the run, but what finished is still written.
  std::string aborted;
  try {
    run_engine(engine, requests, *clock, dopt);
  } catch (const std::exception& e) {
    if (cfg.backend == "sim") throw;
    aborted = e.what();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) {
    print_progress(engine.num_done(), requests.size());
    std::fputc('\n', stderr);
  }
  out.record = std::move(engine.finish(wall));
  out.backend_report = exec->report();
  out.summary = summarize(out.record);

  out.config = cfg.to_json();
  out.config["twinfer_version"] = twinfer_version();
  Json resolved = Json::object();
  resolved["model"] = model.to_json();
  resolved["hardware"] = hw.to_json();
  resolved["memory"] = mp.to_json();
  out.config["resolved"] = resolved;
  if (!aborted.empty()) out.config["aborted"] = aborted;
  if (opt.write_outputs && !cfg.out.empty())
    write_run_outputs(cfg.out, out.config, out.record, out.summary);
  if (!aborted.empty())
    throw ConfigError("run aborted on the " + cfg.backend + " backend after " +
                          std::to_string(engine.num_done()) + " of " +
                          std::to_string(requests.size()) + " requests: " + aborted +
                          (cfg.out.empty() ? "" : " (outputs of what finished are in " + cfg.out + ")"),
                      1);
  return out;
}

}  // namespace twinfer
