// The simulator as a steppable object for the Live panel: the same Engine, SimExecutor and
// policies a `twinfer run --backend sim` builds (app/run.cpp), driven one event batch at a time
// instead of run_engine's loop, so the UI can play, pause, single-step and restart it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/driver.h"
#include "core/engine.h"
#include "core/event_queue.h"
#include "core/policy.h"
#include "core/run_record.h"
#include "viz/model/run_data.h"

namespace twinfer::viz {

// Defaults of the Live panel: a small synthetic workload on a small KV pool, so batching,
// paging and preemption are all visible within a few seconds of simulated time.
RunConfig live_default_config();

class LiveSim {
 public:
  // Validates cfg and builds everything a sim run needs. Throws ConfigError (bad knob, model
  // does not fit, unreadable workload) with the message `twinfer run` would print.
  explicit LiveSim(const RunConfig& cfg);
  ~LiveSim();
  LiveSim(const LiveSim&) = delete;
  LiveSim& operator=(const LiveSim&) = delete;

  // Processes events until one more engine step has ended; false when the run is over.
  bool step();
  // Processes every event due at or before simulated time t.
  void advance_to(double t);
  bool done() const { return done_; }
  double now() const { return now_; }  // simulated time of the last processed event
  int64_t steps() const { return steps_; }
  size_t num_requests() const { return requests_.size(); }
  const RunConfig& config() const { return cfg_; }

  // The run so far as a RunData (unfinished requests have status waiting/running/swapped).
  RunData snapshot(const std::string& label);

 private:
  RunConfig cfg_;
  std::vector<RequestSpec> requests_;
  std::unique_ptr<Executor> exec_;
  std::unique_ptr<QueuePolicy> queue_;
  std::unique_ptr<VictimPolicy> victim_;
  std::unique_ptr<EvictionPolicy> eviction_;
  std::unique_ptr<Engine> engine_;
  VirtualClock clock_;
  EventQueue q_;
  size_t next_ = 0;
  bool busy_ = false;
  bool done_ = false;
  double now_ = 0;
  int64_t steps_ = 0;
  size_t empty_in_a_row_ = 0;
  ScheduleOutcome inflight_;
  StepResult result_;

  void push_next_arrival();
  // Schedules and launches a step when the engine is idle and has work; marks the run done
  // when nothing is left to happen.
  void schedule_if_idle();
  // Handles the next event and every other event due by the clock; true when a step ended.
  bool handle_due_events();
};

}  // namespace twinfer::viz
