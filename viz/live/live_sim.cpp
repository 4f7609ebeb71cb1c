#include "viz/live/live_sim.h"

#include <chrono>

#include "app/run.h"
#include "core/memory_plan.h"
#include "core/model_spec.h"
#include "core/workload.h"
#include "policies/registry.h"
#include "sim/cost_model.h"
#include "sim/hardware.h"

namespace twinfer::viz {

RunConfig live_default_config() {
  RunConfig c;
  c.backend = "sim";
  c.workload.workload = "synthetic";
  c.workload.arrival = "poisson";
  c.workload.rate = 12.0;
  c.workload.num_requests = 150;
  c.workload.max_requests = 150;
  c.workload.input_len = "uniform:64:768";
  c.workload.output_len = "uniform:16:384";
  c.engine.max_model_len = 2048;
  c.engine.max_num_seqs = 32;
  c.engine.num_gpu_blocks_override = 384;
  return c;
}

LiveSim::LiveSim(const RunConfig& cfg) : cfg_(cfg) {
  cfg_.backend = "sim";
  cfg_.out.clear();
  cfg_.validate();
  // Mirrors run_config (app/run.cpp) for the sim backend.
  const ModelSpec model = resolve_model(cfg_.model);
  const HardwareSpec hw = resolve_hardware(cfg_.hardware);
  const MemoryPlan mp = plan_memory(model, hw.memory_bytes, cfg_);
  requests_ = load_workload(cfg_.workload, cfg_.seed);
  queue_ = make_queue_policy(cfg_.engine.scheduling_policy);
  victim_ = make_victim_policy(cfg_.engine.preemption_victim);
  eviction_ = make_eviction_policy(cfg_.engine.eviction_policy);
  exec_ = make_sim_executor(cfg_, model, hw, mp);
  EngineOptions eo = make_engine_options(cfg_, model, mp, /*kv_events=*/true);
  engine_ = std::make_unique<Engine>(eo, *exec_, *queue_, *victim_, eviction_.get());
  push_next_arrival();
  done_ = requests_.empty();
}

LiveSim::~LiveSim() = default;

void LiveSim::push_next_arrival() {
  if (next_ < requests_.size())
    q_.push({requests_[next_].arrival_s, EventType::arrival, static_cast<int64_t>(next_)});
}

void LiveSim::schedule_if_idle() {
  // The body of run_engine's loop (core/driver.cpp), split so the UI can stop between events.
  while (!done_ && !busy_ && engine_->has_work()) {
    const double t = clock_.now();
    engine_->schedule(t, inflight_);
    if (inflight_.plan.empty()) {
      engine_->commit(inflight_, StepResult{}, t);
      // Only failing requests make an empty plan; anything else would spin (as run_engine).
      if (++empty_in_a_row_ > requests_.size() + 16) done_ = true;
      continue;
    }
    empty_in_a_row_ = 0;
    result_ = engine_->execute(inflight_.plan);
    const double end = clock_.step_end(t, result_.duration_s);
    q_.push({end, EventType::step_end, engine_->steps()});
    busy_ = true;
  }
  if (q_.empty()) done_ = true;
}

bool LiveSim::handle_due_events() {
  bool stepped = false;
  clock_.wait_until(q_.top().time);
  do {
    const Event ev = q_.pop();
    now_ = ev.time;
    if (ev.type == EventType::arrival) {
      engine_->add_request(requests_[static_cast<size_t>(ev.id)], ev.time);
      ++next_;
      push_next_arrival();
    } else {
      engine_->commit(inflight_, result_, ev.time);
      busy_ = false;
      ++steps_;
      stepped = true;
    }
  } while (!q_.empty() && q_.top().time <= clock_.now());
  return stepped;
}

bool LiveSim::step() {
  while (true) {
    schedule_if_idle();
    if (done_) return false;
    if (handle_due_events()) return true;
  }
}

void LiveSim::advance_to(double t) {
  while (true) {
    schedule_if_idle();
    if (done_ || q_.top().time > t) break;
    handle_due_events();
  }
  if (t > now_ && !done_) now_ = t;
}

RunData LiveSim::snapshot(const std::string& label) {
  // finish() rebuilds the per-request rows from the live sequences; it can be called repeatedly.
  const RunRecord& r = engine_->finish(0.0);
  Json config = cfg_.to_json();
  return run_from_record(r, summarize(r), config, label);
}

}  // namespace twinfer::viz
