#include "core/driver.h"

#include <thread>

namespace twinfer {

double WallClock::now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void WallClock::wait_until(double t) {
  const double d = t - now();
  if (d > 0) std::this_thread::sleep_for(std::chrono::duration<double>(d));
}

int64_t run_engine(Engine& engine, const std::vector<RequestSpec>& requests, Clock& clock,
                   const DriverOptions& opt) {
  EventQueue q;
  size_t next = 0;
  // Only the next arrival sits in the queue: a million-request workload costs no heap.
  auto push_next = [&] {
    if (next < requests.size())
      q.push({requests[next].arrival_s, EventType::arrival, static_cast<int64_t>(next)});
  };
  push_next();
  bool busy = false;
  ScheduleOutcome inflight;
  StepResult result;
  int64_t steps = 0;
  size_t empty_in_a_row = 0;
  while (true) {
    if (!busy && engine.has_work()) {
      const double now = clock.now();
      engine.schedule(now, inflight);
      if (inflight.plan.empty()) {
        engine.commit(inflight, StepResult{}, now);
        // A plan can be empty only while requests are being failed; anything else is a
        // scheduler bug that would spin forever, so stop after a bounded number of tries.
        if (++empty_in_a_row > requests.size() + 16) break;
        continue;
      }
      empty_in_a_row = 0;
      result = engine.execute(inflight.plan);
      const double end = clock.step_end(now, result.duration_s);
      q.push({end, EventType::step_end, engine.steps()});
      busy = true;
    }
    if (q.empty()) break;
    // Handle the next event and every other event due by then, so requests that arrive at the
    // same instant (or, on a wall clock, while a step ran) are all seen by the next schedule.
    clock.wait_until(q.top().time);
    do {
      const Event ev = q.pop();
      if (opt.event_log) opt.event_log->push_back(ev);
      if (ev.type == EventType::arrival) {
        engine.add_request(requests[static_cast<size_t>(ev.id)], ev.time);
        ++next;
        push_next();
      } else {
        engine.commit(inflight, result, ev.time);
        busy = false;
        ++steps;
        if (opt.progress && steps % opt.progress_every == 0)
          opt.progress(engine.num_done(), requests.size());
      }
    } while (!q.empty() && q.top().time <= clock.now());
  }
  return steps;
}

}  // namespace twinfer
