// Longest prefix match (SGLang's lpm): the request with the most prompt blocks already in the
// prefix cache goes first, so cached prefixes are reused before eviction can claim them. The key
// reads prefix_hit_blocks, which moves as the cache changes, hence time dependent.
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class LpmQueue final : public QueuePolicy {
 public:
  std::string name() const override { return "lpm"; }
  double key(const RequestView& r, double /*now*/) override {
    return -static_cast<double>(r.prefix_hit_blocks);
  }
  bool time_dependent() const override { return true; }
  bool needs_prefix_hits() const override { return true; }
};

}  // namespace

std::unique_ptr<QueuePolicy> make_lpm_queue() { return std::make_unique<LpmQueue>(); }

}  // namespace twinfer::policies
