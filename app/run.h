// One run end to end: resolve presets, plan memory, load the workload, build the policies and
// the executor for the backend, drive the engine, summarize and write the outputs.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/engine.h"
#include "core/executor.h"
#include "sim/cost_model.h"
#include "sim/hardware.h"
#include "core/memory_plan.h"
#include "core/model_spec.h"
#include "core/request.h"
#include "core/run_record.h"

namespace twinfer {

struct RunOptions {
  bool progress = false;       // progress bar on stderr
  bool quiet = false;          // no start-up lines
  bool kv_events = true;       // record KV events (kv_events.csv)
  bool write_outputs = true;   // when cfg.out is set
};

struct RunResult {
  Json config;  // the resolved configuration written to config.json
  MemoryPlan memory;
  RunRecord record;
  Summary summary;
  std::string backend_report;  // Executor::report() at the end of the run
};

// Builds the executor a backend needs. Backends other than "sim" register themselves here
// (the CPU reference and CUDA engine live in their own libraries). `plan` arrives computed for
// the configured hardware; a backend that measures its device (CUDA) replaces it.
using ExecutorFactory = std::function<std::unique_ptr<Executor>(
    const RunConfig& cfg, const ModelSpec& model, MemoryPlan& plan)>;
void register_backend(const std::string& name, ExecutorFactory f);
void register_cpu_backend();   // app/backend_cpu.cpp
void register_cuda_backend();  // app/backend_cuda.cpp (builds with nvcc only)

// Real backends need token ids; trace workloads carry only lengths. Fills prompt_tokens with
// deterministic ids in [0, vocab): from the request's hash_ids where it has them (equal prefix
// ids give equal tokens, so prefix caching behaves as the trace says), else from (seed, id).
void materialize_prompt_tokens(std::vector<RequestSpec>& reqs, int64_t vocab, uint64_t seed);

// The pieces run_config wires together, shared with the live simulator in twinfer-viz so a
// live run and `twinfer run` can never read a knob differently.
EngineOptions make_engine_options(const RunConfig& cfg, const ModelSpec& model,
                                  const MemoryPlan& mp, bool kv_events);
std::unique_ptr<SimExecutor> make_sim_executor(const RunConfig& cfg, const ModelSpec& model,
                                               const HardwareSpec& hw, const MemoryPlan& mp);

// Throws ConfigError for anything the user can fix.
RunResult run_config(const RunConfig& cfg, const RunOptions& opt = {});

}  // namespace twinfer
