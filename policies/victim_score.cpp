// Score victim: preempts the request with the highest
//     waiting_s / ((priority + 1) * max(generated, 1)),
// i.e. one that has been in the system long and produced little, so recomputing it loses the
// least finished work per second of latency it already carries. The issue states the divisor as
// priority * max(generated, 1); vLLM priorities start at 0, so we use priority + 1 (priorities
// below 0 count as 0) to keep the divisor positive. Ties: latest arrival, then highest id.
#include <algorithm>

#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

double score(const RequestView& r) {
  const double prio = static_cast<double>(std::max<int32_t>(r.priority, 0)) + 1.0;
  const double gen = static_cast<double>(std::max<int32_t>(r.generated, 1));
  return r.waiting_s / (prio * gen);
}

class ScoreVictim final : public VictimPolicy {
 public:
  std::string name() const override { return "score"; }
  size_t choose(std::span<const RequestView> running, double /*now*/) override {
    size_t best = 0;
    double best_score = score(running[0]);
    for (size_t i = 1; i < running.size(); ++i) {
      const double s = score(running[i]);
      if (s > best_score || (s == best_score && arrived_later(running[i], running[best]))) {
        best = i;
        best_score = s;
      }
    }
    return best;
  }
};

}  // namespace

std::unique_ptr<VictimPolicy> make_score_victim() { return std::make_unique<ScoreVictim>(); }

}  // namespace twinfer::policies
