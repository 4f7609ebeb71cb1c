// The run loop: feeds arrivals to the engine and steps it on a clock. The same loop drives a
// simulation (virtual clock that jumps to the next event) and a hardware run (wall clock).
#pragma once
#include <chrono>
#include <functional>
#include <vector>

#include "core/engine.h"
#include "core/event_queue.h"
#include "core/request.h"

namespace twinfer {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double now() = 0;
  // Idle until t (no-op when t is past).
  virtual void wait_until(double t) = 0;
  // When a step that started at `start` and took `duration` (as the executor reports) ends.
  virtual double step_end(double start, double duration) = 0;
};

// Simulated time: jumps, never sleeps.
class VirtualClock : public Clock {
 public:
  double now() override { return t_; }
  void wait_until(double t) override {
    if (t > t_) t_ = t;
  }
  double step_end(double start, double duration) override { return t_ = start + duration; }

 private:
  double t_ = 0.0;
};

// Wall time since construction; arrivals are replayed in real time.
class WallClock : public Clock {
 public:
  WallClock() : t0_(std::chrono::steady_clock::now()) {}
  double now() override;
  void wait_until(double t) override;
  double step_end(double, double) override { return now(); }

 private:
  std::chrono::steady_clock::time_point t0_;
};

struct DriverOptions {
  // Called every `progress_every` steps with (finished or failed requests, total requests).
  std::function<void(size_t, size_t)> progress;
  int64_t progress_every = 2048;
  std::vector<Event>* event_log = nullptr;  // tests: every processed event, in order
};

// Runs `requests` (sorted by arrival) to completion. Returns the number of steps.
int64_t run_engine(Engine& engine, const std::vector<RequestSpec>& requests, Clock& clock,
                   const DriverOptions& opt = {});

}  // namespace twinfer
