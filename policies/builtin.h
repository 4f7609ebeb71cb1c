// Constructors of the built-in policies, one per file under policies/. Internal to the registry
// and the tests; everything else builds policies by name through policies/registry.h.
#pragma once
#include <memory>

#include "core/policy.h"

namespace twinfer::policies {

std::unique_ptr<QueuePolicy> make_fcfs_queue();
std::unique_ptr<QueuePolicy> make_priority_queue();
std::unique_ptr<QueuePolicy> make_sjf_queue();
std::unique_ptr<QueuePolicy> make_lpm_queue();

// Victim tie-break shared by every built-in victim policy: the later arrival, then the higher
// id, is the "more preemptible" one (vLLM preempts the tail of its running queue).
inline bool arrived_later(const RequestView& a, const RequestView& b) {
  if (a.arrival_s != b.arrival_s) return a.arrival_s > b.arrival_s;
  return a.id > b.id;
}

std::unique_ptr<VictimPolicy> make_last_arrived_victim();
std::unique_ptr<VictimPolicy> make_lowest_priority_victim();
std::unique_ptr<VictimPolicy> make_score_victim();

std::unique_ptr<EvictionPolicy> make_lru_eviction();
std::unique_ptr<EvictionPolicy> make_lfu_eviction();

std::unique_ptr<BlockSizePolicy> make_fixed_block_size(int32_t size);
std::unique_ptr<BlockSizePolicy> make_auto_block_size();

// The rule behind "auto", exposed for the tests and docs: the largest power of two in
// [kAutoMinBlock, kAutoMaxBlock] whose expected last-block waste stays under kAutoMaxWaste of
// the mean prompt's KV footprint.
inline constexpr int32_t kAutoMinBlock = 8;
inline constexpr int32_t kAutoMaxBlock = 128;
inline constexpr double kAutoMaxWaste = 0.05;
int32_t auto_block_size(int32_t max_model_len, double mean_prompt_len);

}  // namespace twinfer::policies
