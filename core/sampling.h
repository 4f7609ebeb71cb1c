// vLLM-compatible sampling on the CPU: validation of SamplingParams and one token drawn from a
// logits row. Randomness is counter-based (a key derived from the request's seed and the token
// position), so a GPU sampler can reproduce the same draw from the same key.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/request.h"

namespace twinfer {

// nullopt when valid; otherwise a message naming the parameter, its value and what vLLM
// accepts (e.g. "top_p must be in (0, 1], got 1.5").
std::optional<std::string> validate_sampling(const SamplingParams& p, int64_t vocab_size);

// Key of the draw for the token at output position `pos` of a request: from p.seed when set
// (reproducible across runs and batch compositions), else from the run seed and request id.
uint64_t sampling_key(const SamplingParams& p, uint64_t run_seed, RequestId id, int32_t pos);

// exp(d) for d <= 0 (NaN gives 0), in double arithmetic with every operation rounded as written
// (no fused multiply-add), so the GPU sampler reproduces it bit for bit. sample_token's
// probabilities are sampling_exp(l - max l); their sums are taken in exact fixed point
// (q * 2^44 truncated), so the drawn token never depends on a summation order.
float sampling_exp(float d);

// Applies penalties (repetition over prompt+output, presence/frequency over output),
// min_tokens (stop ids and eos masked), temperature, top-k, top-p, min-p to `logits` in place,
// then draws by inverse CDF over the kept tokens: in descending probability (ties by id) when
// top-k or top-p truncates, else in ascending id order (no sort needed). temperature == 0 is
// greedy (argmax, lowest id on ties).
int32_t sample_token(std::span<float> logits, const SamplingParams& p,
                     std::span<const int32_t> prompt, std::span<const int32_t> output,
                     std::span<const int64_t> eos_ids, uint64_t key);

}  // namespace twinfer
