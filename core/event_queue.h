// Discrete-event queue: events pop in (time, type, id) order, so runs are deterministic even
// when an arrival and a step end share a timestamp (arrivals first: a request that arrives
// exactly when a step ends is seen by the next schedule).
#pragma once
#include <cstdint>
#include <queue>
#include <vector>

namespace twinfer {

enum class EventType : uint8_t { arrival = 0, step_end = 1 };

struct Event {
  double time = 0.0;
  EventType type = EventType::arrival;
  int64_t id = 0;  // request id for arrivals, step index for step ends

  bool operator>(const Event& o) const {
    if (time != o.time) return time > o.time;
    if (type != o.type) return type > o.type;
    return id > o.id;
  }
};

class EventQueue {
 public:
  void push(const Event& e) { heap_.push(e); }
  Event pop() {
    Event e = heap_.top();
    heap_.pop();
    return e;
  }
  const Event& top() const { return heap_.top(); }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }

 private:
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> heap_;
};

}  // namespace twinfer
