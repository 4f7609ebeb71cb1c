// A request as the engine tracks it while it moves between the waiting, running and swapped
// queues. Token accounting follows vLLM: num_tokens = prompt + generated; each step computes
// KV for [num_computed, num_computed + n) and samples once num_computed reaches num_tokens.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/request.h"

namespace twinfer {

struct Sequence {
  RequestSpec spec;
  SeqStatus status = SeqStatus::waiting;
  // Prefix-cache identities of full blocks: the prompt's at arrival, extended with output blocks
  // as they fill (real tokens only).
  std::vector<BlockHash> block_hashes;
  std::vector<int32_t> tokens;           // real backends: prompt + generated ids
  int32_t num_tokens = 0;
  int32_t num_computed = 0;
  int32_t generated = 0;
  int32_t max_tokens = 0;        // output tokens after which the request finishes
  int32_t num_cached_blocks = 0;  // leading blocks already offered to the prefix cache
  int32_t num_preemptions = 0;
  int32_t prefix_hit_tokens = -1;  // at first admission; -1 until admitted
  int32_t num_blocks = 0;          // blocks held (mirror of the block table's size)
  bool in_static_batch = false;    // static batching: still part of the running batch
  double queue_key = 0.0;
  double last_token_time = 0.0;
  RequestTimes times;
  std::string error;

  // One token left to compute after a sampled one: an ordinary decode. Anything else (a fresh
  // prompt, a chunk, a recompute after preemption) is prefill work.
  bool is_decode() const { return generated > 0 && num_tokens - num_computed == 1; }
  bool done() const { return status == SeqStatus::finished || status == SeqStatus::failed; }
};

}  // namespace twinfer
