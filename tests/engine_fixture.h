// Test helpers: an executor whose step time is a fixed affine function of the tokens computed,
// so scheduling tests can predict timestamps by hand, and a small engine harness.
#pragma once
#include <memory>
#include <vector>

#include "core/driver.h"
#include "core/engine.h"
#include "policies/registry.h"

namespace twinfer::test {

class AffineExecutor : public Executor {
 public:
  double base_s = 0.010, per_token_s = 0.001;
  std::vector<StepPlan> plans;  // every plan seen, for assertions
  std::string backend() const override { return "test"; }
  bool real_tokens() const override { return false; }
  StepResult execute(const StepPlan& p) override {
    plans.push_back(p);
    StepResult r;
    r.duration_s = base_s + per_token_s * p.num_tokens();
    return r;
  }
};

struct Harness {
  AffineExecutor exec;
  std::unique_ptr<QueuePolicy> queue;
  std::unique_ptr<VictimPolicy> victim;
  std::unique_ptr<EvictionPolicy> eviction;
  std::unique_ptr<Engine> engine;
  std::vector<Event> events;

  Harness(EngineOptions o, const std::string& q = "fcfs", const std::string& v = "last-arrived")
      : queue(make_queue_policy(q)), victim(make_victim_policy(v)),
        eviction(make_eviction_policy("lru")) {
    engine = std::make_unique<Engine>(o, exec, *queue, *victim, eviction.get());
  }
  RunRecord& run(const std::vector<RequestSpec>& reqs) {
    VirtualClock clock;
    DriverOptions d;
    d.event_log = &events;
    run_engine(*engine, reqs, clock, d);
    return engine->finish(0.0);
  }
};

inline RequestSpec req(RequestId id, double t, int32_t prompt, int32_t out, int32_t prio = 0) {
  RequestSpec r;
  r.id = id;
  r.arrival_s = t;
  r.prompt_len = prompt;
  r.output_len = out;
  r.priority = prio;
  r.sampling.max_tokens = out;
  r.sampling.ignore_eos = true;
  return r;
}

inline EngineOptions options(int32_t blocks, int32_t block_size = 16, int32_t budget = 2048,
                             bool chunked = false) {
  EngineOptions o;
  o.blocks.num_gpu_blocks = blocks;
  o.blocks.num_cpu_blocks = 64;
  o.blocks.block_size = block_size;
  o.sched.max_num_batched_tokens = budget;
  o.sched.max_model_len = 4096;
  o.sched.chunked_prefill = chunked;
  o.sched.max_num_seqs = 256;
  return o;
}

}  // namespace twinfer::test
