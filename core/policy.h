// The small interfaces that scheduling policies implement. core/ owns the interfaces (the
// scheduler and block manager call them); policies/ holds one implementation per file and the
// registry that builds them by name, including the Lua adapter.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/request.h"

namespace twinfer {

using BlockId = int32_t;

// Read-only view of a request handed to policies.
struct RequestView {
  RequestId id = 0;
  double arrival_s = 0.0;
  double waiting_s = 0.0;  // now - arrival
  int32_t prompt_len = 0;
  int32_t generated = 0;   // output tokens so far
  int32_t output_len = -1; // known target length (trace replay), -1 if unknown
  int32_t max_tokens = 0;
  int32_t priority = 0;    // lower = more important
  int32_t prefix_hit_blocks = 0;  // full blocks of the prompt already in the prefix cache
  int32_t num_preemptions = 0;
  int32_t num_blocks = 0;  // blocks held now (running requests)
};

// Order of the waiting queue. Smaller key is served first; equal keys fall back to
// (arrival, id), so every policy gives a total, deterministic order.
class QueuePolicy {
 public:
  virtual ~QueuePolicy() = default;
  virtual std::string name() const = 0;
  virtual double key(const RequestView& r, double now) = 0;
  // False lets the scheduler keep keys cached while the request waits.
  virtual bool time_dependent() const { return false; }
  // True when key() reads prefix_hit_blocks, which the scheduler then computes each step.
  virtual bool needs_prefix_hits() const { return false; }
};

// Which running request to preempt when blocks run out. Returns an index into `running`
// (never empty). `running` is in the scheduler's running order (admission order).
class VictimPolicy {
 public:
  virtual ~VictimPolicy() = default;
  virtual std::string name() const = 0;
  virtual size_t choose(std::span<const RequestView> running, double now) = 0;
};

// The set of cached blocks that no sequence references: candidates for eviction.
// The block manager inserts a block when its last reference goes away and erases it when a
// prefix hit takes it back. `pop_victim` removes and returns the next block to evict.
class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual std::string name() const = 0;
  // access_count: prefix hits + allocations of this block's content; last_access: clock time.
  virtual void insert(BlockId b, uint64_t access_count, double last_access) = 0;
  virtual void erase(BlockId b) = 0;
  virtual std::optional<BlockId> pop_victim() = 0;
  virtual size_t size() const = 0;
};

// Block size chosen at start-up (e.g. from model and workload); returns tokens per block.
class BlockSizePolicy {
 public:
  virtual ~BlockSizePolicy() = default;
  virtual std::string name() const = 0;
  virtual int32_t choose(int32_t max_model_len, double mean_prompt_len, double mean_output_len) = 0;
};

// Shape of the speculative-decoding draft tree for the next step: the branching factor at each
// depth ({4, 2, 1}: 4 drafts after the last token, 2 continuations of each, 1 of each of those;
// 4 + 8 + 8 = 20 draft tokens). Empty: no speculation this step.
class SpecTreePolicy {
 public:
  virtual ~SpecTreePolicy() = default;
  virtual std::string name() const = 0;
  // batch_size: sequences decoding this step; acceptance_rate: recent mean fraction of draft
  // tokens accepted, in [0, 1].
  virtual std::vector<int> shape(int32_t batch_size, double acceptance_rate) = 0;
};

}  // namespace twinfer
