// vLLM's victim: it preempts the last request of its running queue, which in a FCFS engine is
// the latest arrival. Choosing by arrival_s (ties: highest id) rather than by position keeps the
// rule meaningful when another queue policy admitted requests out of arrival order.
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class LastArrivedVictim final : public VictimPolicy {
 public:
  std::string name() const override { return "last-arrived"; }
  size_t choose(std::span<const RequestView> running, double /*now*/) override {
    size_t best = 0;
    for (size_t i = 1; i < running.size(); ++i)
      if (arrived_later(running[i], running[best])) best = i;
    return best;
  }
};

}  // namespace

std::unique_ptr<VictimPolicy> make_last_arrived_victim() {
  return std::make_unique<LastArrivedVictim>();
}

}  // namespace twinfer::policies
