// Checks shared by the real backends (CPU reference and CUDA).
#include "core/executor.h"

#include "core/sampling.h"

namespace twinfer {

std::vector<int32_t> default_cudagraph_sizes(int32_t max_num_seqs) {
  std::vector<int32_t> v = {1, 2, 4};
  for (int32_t b = 8; b <= 256; b += 8) v.push_back(b);
  for (int32_t b = 272; b <= 512; b += 16) v.push_back(b);
  std::vector<int32_t> out;
  for (int32_t b : v)
    if (b <= max_num_seqs) out.push_back(b);
  const int32_t cap = std::min<int32_t>(max_num_seqs, 512);
  if (cap > 0 && (out.empty() || out.back() < cap)) out.push_back(cap);
  return out;
}

std::vector<int32_t> gemm_warm_counts(int32_t first, int32_t max_tokens) {
  std::vector<int32_t> out;
  for (int32_t t = first; t <= max_tokens; t += t < 64 ? 1 : t < 512 ? 8 : t < 2048 ? 32 : 128)
    out.push_back(t);
  return out;
}

std::string check_scheduled_seq(const ScheduledSeq& q, int32_t plan_block_size, int32_t block_size,
                                int32_t num_gpu_blocks, int64_t vocab, const char* who) {
  if (plan_block_size != block_size)
    return "plan block_size " + std::to_string(plan_block_size) +
           " differs from the " + std::string(who) + "'s " + std::to_string(block_size);
  if (q.num_new_tokens <= 0 || q.context_before < 0)
    return "num_new_tokens " + std::to_string(q.num_new_tokens) + " and context_before " +
           std::to_string(q.context_before) + " must be positive and non-negative";
  if (q.tokens == nullptr) return std::string("no token ids (the ") + who + " needs real prompts)";
  if (static_cast<int64_t>(q.tokens->size()) < q.context_after())
    return "has " + std::to_string(q.tokens->size()) + " token ids, step needs " +
           std::to_string(q.context_after());
  if (static_cast<int64_t>(q.block_table.size()) * block_size < q.context_after())
    return "block table of " + std::to_string(q.block_table.size()) + " blocks cannot hold " +
           std::to_string(q.context_after()) + " tokens";
  for (BlockId b : q.block_table)
    if (b < 0 || b >= num_gpu_blocks)
      return "block id " + std::to_string(b) + " out of range [0, " +
             std::to_string(num_gpu_blocks) + ")";
  for (int32_t p = q.context_before; p < q.context_after(); ++p) {
    const int32_t t = (*q.tokens)[static_cast<size_t>(p)];
    if (t < 0 || t >= vocab)
      return "token id " + std::to_string(t) + " at position " + std::to_string(p) +
             " is outside the vocabulary [0, " + std::to_string(vocab) + ")";
  }
  if (q.samples) {
    if (q.sampling == nullptr) return "no sampling parameters";
    if (auto err = validate_sampling(*q.sampling, vocab)) return *err;
  }
  return "";
}

}  // namespace twinfer
