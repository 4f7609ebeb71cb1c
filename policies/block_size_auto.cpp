// Block size from the workload's mean prompt length. Larger blocks mean shorter block tables and
// fewer, larger attention gathers; smaller blocks waste less of the last, partly filled block.
// "auto" takes the largest power of two B in [8, 128] whose expected waste stays under 5% of the
// KV the mean prompt occupies:
//     w(B) = (B - 1) / 2          expected empty slots in the last block, taking the prompt
//                                 length modulo B as uniform on 0..B-1 (waste B - r for r > 0)
//     w(B) / (L + w(B)) < 0.05    with L the mean prompt length, i.e. (B - 1) / 2 < L / 19
// If even B = 8 misses the bound (L < ~67 tokens) the answer is 8, the least wasteful size.
// B never exceeds max_model_len (rounded down to a power of two, floor 8) when that is > 0.
// An unknown or invalid mean (<= 0, NaN, infinite) gives vLLM's default, 16.
#include <algorithm>
#include <cmath>

#include "policies/builtin.h"

namespace twinfer::policies {

int32_t auto_block_size(int32_t max_model_len, double mean_prompt_len) {
  int32_t cap = kAutoMaxBlock;
  while (max_model_len > 0 && cap > kAutoMinBlock && cap > max_model_len) cap /= 2;
  if (!std::isfinite(mean_prompt_len) || mean_prompt_len <= 0.0) return std::min(16, cap);
  int32_t best = kAutoMinBlock;
  for (int32_t b = kAutoMinBlock; b <= cap; b *= 2) {
    const double waste = (b - 1) / 2.0;
    if (waste / (mean_prompt_len + waste) < kAutoMaxWaste) best = b;
  }
  return best;
}

namespace {

class AutoBlockSize final : public BlockSizePolicy {
 public:
  std::string name() const override { return "auto"; }
  int32_t choose(int32_t max_model_len, double mean_prompt_len,
                 double /*mean_output_len*/) override {
    return auto_block_size(max_model_len, mean_prompt_len);
  }
};

}  // namespace

std::unique_ptr<BlockSizePolicy> make_auto_block_size() {
  return std::make_unique<AutoBlockSize>();
}

}  // namespace twinfer::policies
