// First come, first served: the waiting queue in arrival order (vLLM's default).
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class FcfsQueue final : public QueuePolicy {
 public:
  std::string name() const override { return "fcfs"; }
  double key(const RequestView& r, double /*now*/) override { return r.arrival_s; }
};

}  // namespace

std::unique_ptr<QueuePolicy> make_fcfs_queue() { return std::make_unique<FcfsQueue>(); }

}  // namespace twinfer::policies
