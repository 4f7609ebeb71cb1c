// Replays kv_events.csv into the block map at any point of a run (docs/trace-format.md,
// "Replaying the KV block map"). Building applies every event once, validating it, and keeps a
// checkpoint of the whole block state every `interval` events; seeking copies the nearest
// checkpoint and applies at most `interval` events, so scrubbing costs microseconds.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "viz/model/run_data.h"

namespace twinfer::viz {

// One GPU block. `owner` is the requests row (RunData::requests) of the sequence that last
// brought the block into use (allocate, share of an unreferenced block, cow, swap_in); -1 none.
struct BlockCell {
  int32_t owner = -1;
  int16_t ref = 0;
  uint8_t hashed = 0;  // holds a full block registered in the prefix cache
  uint8_t pad = 0;
};
static_assert(sizeof(BlockCell) == 8, "checkpoints store whole BlockCell arrays");

enum class BlockState : uint8_t { free, cached, used, shared };
inline BlockState block_state(const BlockCell& c) {
  if (c.ref > 1) return BlockState::shared;
  if (c.ref == 1) return BlockState::used;
  return c.hashed ? BlockState::cached : BlockState::free;
}

struct HostCell {
  int32_t owner = -1;  // requests row of the swapped-out sequence; -1 free
};

struct KvCounts {
  int32_t free = 0, cached = 0, used = 0, shared = 0, host_swapped = 0;
};

// A sequence's block table at some point: logical block i -> physical GPU block, or the host
// blocks holding it while swapped out.
struct BlockTable {
  std::vector<int32_t> gpu;
  std::vector<int32_t> host;
};

class KvReplay {
 public:
  // Builds checkpoints for `d` (which must outlive the replay). The checkpoint budget bounds
  // their memory; the interval is at least `min_interval` events. Never throws: a run whose
  // events do not replay cleanly keeps the state before the bad event and reports it in error().
  explicit KvReplay(const RunData& d, size_t budget_bytes = size_t{96} << 20,
                    size_t min_interval = 512);

  size_t num_events() const { return n_events_; }   // events that replay (all unless error)
  size_t interval() const { return interval_; }
  const std::string& error() const { return error_; }
  // Mismatches against steps.csv kv_blocks_used / kv_blocks_cached (first few).
  const std::vector<std::string>& mismatches() const { return mismatches_; }

  // State after the first `n` events (clamped to num_events()).
  void seek(size_t n);
  size_t applied() const { return applied_; }
  // Number of events with time <= t: seek(events_until(t)) shows the map at time t.
  size_t events_until(double t) const;

  const std::vector<BlockCell>& gpu() const { return gpu_; }
  const std::vector<HostCell>& host() const { return host_; }
  KvCounts counts() const;

  // Block table of requests row `row` after the first `n` events.
  BlockTable table_at(int32_t row, size_t n) const;

 private:
  const RunData& d_;
  size_t n_events_ = 0;
  size_t interval_ = 0;
  size_t applied_ = 0;
  std::vector<BlockCell> gpu_;
  std::vector<HostCell> host_;
  std::vector<BlockCell> ck_gpu_;  // [checkpoints * gpu blocks]: state after k*interval events
  std::vector<HostCell> ck_host_;
  std::string error_;
  std::vector<std::string> mismatches_;
  int32_t state_count_[4] = {};  // GPU blocks per BlockState, kept exact by apply()
  int32_t host_swapped_ = 0;

  // Applies event i to the current state; returns "" or what was inconsistent.
  std::string apply(size_t i);
  void restore(size_t k);
  void recount();
};

}  // namespace twinfer::viz
