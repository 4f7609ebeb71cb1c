// The configured --block-size, whatever the workload.
#include <cassert>

#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class FixedBlockSize final : public BlockSizePolicy {
 public:
  explicit FixedBlockSize(int32_t size) : size_(size) { assert(size > 0); }
  std::string name() const override { return "fixed"; }
  int32_t choose(int32_t /*max_model_len*/, double /*mean_prompt_len*/,
                 double /*mean_output_len*/) override {
    return size_;
  }

 private:
  int32_t size_;
};

}  // namespace

std::unique_ptr<BlockSizePolicy> make_fixed_block_size(int32_t size) {
  return std::make_unique<FixedBlockSize>(size);
}

}  // namespace twinfer::policies
