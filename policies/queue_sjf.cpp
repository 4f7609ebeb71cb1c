// Shortest job first on the request's total length in tokens. When the workload fixes the output
// length (trace replay, synthetic draws: output_len >= 0) the key is the true job length
// prompt_len + output_len, i.e. oracle SJF as serving simulators evaluate it; otherwise the
// bound the request could reach, prompt_len + max_tokens. The key counts the whole job, not what
// remains, so a preempted request keeps its place relative to the others.
#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class SjfQueue final : public QueuePolicy {
 public:
  std::string name() const override { return "sjf"; }
  double key(const RequestView& r, double /*now*/) override {
    const int64_t out = r.output_len >= 0 ? r.output_len : r.max_tokens;
    return static_cast<double>(static_cast<int64_t>(r.prompt_len) + out);
  }
};

}  // namespace

std::unique_ptr<QueuePolicy> make_sjf_queue() { return std::make_unique<SjfQueue>(); }

}  // namespace twinfer::policies
