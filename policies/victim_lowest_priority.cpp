// Preempts the least important running request: the largest priority value (vLLM's convention,
// lower = more important); among equals the latest arrival, then the highest id.
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class LowestPriorityVictim final : public VictimPolicy {
 public:
  std::string name() const override { return "lowest-priority"; }
  size_t choose(std::span<const RequestView> running, double /*now*/) override {
    size_t best = 0;
    for (size_t i = 1; i < running.size(); ++i) {
      const RequestView& a = running[i];
      const RequestView& b = running[best];
      if (a.priority != b.priority ? a.priority > b.priority : arrived_later(a, b)) best = i;
    }
    return best;
  }
};

}  // namespace

std::unique_ptr<VictimPolicy> make_lowest_priority_victim() {
  return std::make_unique<LowestPriorityVictim>();
}

}  // namespace twinfer::policies
