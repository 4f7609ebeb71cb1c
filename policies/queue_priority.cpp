// Static priority: lower value first, as vLLM's --scheduling-policy priority. No aging, so the
// key never changes while a request waits and the scheduler may cache it.
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class PriorityQueue final : public QueuePolicy {
 public:
  std::string name() const override { return "priority"; }
  double key(const RequestView& r, double /*now*/) override {
    return static_cast<double>(r.priority);
  }
};

}  // namespace

std::unique_ptr<QueuePolicy> make_priority_queue() { return std::make_unique<PriorityQueue>(); }

}  // namespace twinfer::policies
