// Paged KV-cache manager: a pool of fixed-size GPU blocks, per-sequence block tables, reference
// counts, hash-based prefix caching of full blocks with policy-driven eviction of unreferenced
// cached blocks, copy-on-write forks and a host swap pool.
//
// Block states (each GPU block is in exactly one):
//   free        ref 0, no hash, on the free list (FIFO: the lowest ids are handed out first)
//   cached      ref 0, has a hash, in the eviction policy's set, reusable by a prefix hit
//   used        ref >= 1, in one or more block tables (hashed if full and caching is on)
// Plain C++: no GPU includes. Failure is a value: can_allocate() before allocate().
#pragma once
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/kv_events.h"
#include "core/policy.h"

namespace twinfer {

struct BlockManagerConfig {
  int32_t num_gpu_blocks = 0;
  int32_t num_cpu_blocks = 0;  // host swap pool
  int32_t block_size = 16;     // tokens per block
  bool enable_prefix_caching = false;
};

class BlockManager {
 public:
  // `eviction` may be null when prefix caching is off. The log may be null.
  BlockManager(const BlockManagerConfig& cfg, EvictionPolicy* eviction, KvEventLog* log);

  int32_t block_size() const { return cfg_.block_size; }
  // Clock time stamped on block accesses (the eviction policy's recency).
  void set_time(double t) { now_ = t; }
  int32_t num_gpu_blocks() const { return cfg_.num_gpu_blocks; }
  int32_t num_cpu_blocks() const { return cfg_.num_cpu_blocks; }
  int32_t blocks_for_tokens(int64_t tokens) const {
    return static_cast<int32_t>((tokens + cfg_.block_size - 1) / cfg_.block_size);
  }

  // Blocks that can be handed out now: free plus cached-evictable.
  int32_t num_free_blocks() const;
  int32_t num_used_blocks() const { return cfg_.num_gpu_blocks - num_free_blocks(); }
  int32_t num_cached_blocks() const;  // evictable
  int32_t num_free_cpu_blocks() const { return static_cast<int32_t>(cpu_free_.size()); }

  // ---- prefix cache -------------------------------------------------------------------------
  // Number of leading full blocks of `hashes` present in the cache (used or cached).
  int32_t count_prefix_hits(std::span<const BlockHash> hashes) const;

  // ---- allocation -----------------------------------------------------------------------------
  // Whether `seq` can grow its table to cover `total_tokens`, reusing the cached blocks named by
  // `hashes` (leading full blocks, all present in the cache) when the table is empty.
  // `reserve` blocks must stay free afterwards (vLLM's watermark).
  bool can_allocate(RequestId seq, int64_t total_tokens, std::span<const BlockHash> hashes = {},
                    int32_t reserve = 0) const;
  // Grows the table; for an empty table first takes the cached blocks named by `hashes` (all
  // must be present: pass the span count_prefix_hits() measured). Returns the number of leading
  // tokens whose KV came from the cache. Must follow a successful can_allocate.
  // `queried_blocks`: how many full blocks the caller looked up to find `hashes` (the prompt's
  // full blocks, of which `hashes` are the leading hits); counted as prefix-cache queries so the
  // hit rate is hits / blocks looked up. -1: hashes.size() (the caller looked up only these).
  int32_t allocate(RequestId seq, int64_t total_tokens, std::span<const BlockHash> hashes = {},
                   int32_t queried_blocks = -1);
  // Registers full blocks [first, first + hashes.size()) of seq's table in the prefix cache
  // (block first+i gets hashes[i]) so later sequences can share them. Blocks already hashed, or
  // whose content another block already caches, are left as they are.
  void cache_blocks(RequestId seq, size_t first, std::span<const BlockHash> hashes);
  // Drops seq's references (tail first, so tail blocks are evicted before shared prefixes).
  void free(RequestId seq);

  // ---- copy-on-write ------------------------------------------------------------------------
  // child references all of parent's blocks (ref +1 each).
  void fork(RequestId parent, RequestId child);
  // Before writing token position `pos` of seq: if its block is shared (ref > 1), copies it to a
  // fresh block and returns {src, dst}; std::nullopt when no copy is needed or no block is free
  // (check can_write first).
  bool can_write(RequestId seq, int64_t pos) const;
  std::optional<std::pair<BlockId, BlockId>> prepare_write(RequestId seq, int64_t pos);

  // ---- swap ---------------------------------------------------------------------------------
  bool can_swap_out(RequestId seq) const;
  // Moves seq's GPU blocks to host blocks; returns (gpu, cpu) pairs to copy.
  std::vector<std::pair<BlockId, BlockId>> swap_out(RequestId seq);
  bool can_swap_in(RequestId seq, int32_t reserve = 0) const;
  // Moves seq's host blocks back to fresh GPU blocks; returns (cpu, gpu) pairs to copy.
  std::vector<std::pair<BlockId, BlockId>> swap_in(RequestId seq);
  bool is_swapped(RequestId seq) const;

  // ---- inspection ---------------------------------------------------------------------------
  std::span<const BlockId> block_table(RequestId seq) const;  // empty if none
  int32_t ref_count(BlockId b) const { return refs_[static_cast<size_t>(b)]; }
  bool has_table(RequestId seq) const { return tables_.count(seq) != 0; }
  uint64_t prefix_queries() const { return prefix_queries_; }  // blocks looked up
  uint64_t prefix_hits() const { return prefix_hits_; }        // blocks found
  // Checks every invariant (ref counts equal table references, each block in exactly one
  // state, no duplicates in free lists); returns a description of the first violation or "".
  std::string check_invariants() const;

 private:
  BlockManagerConfig cfg_;
  EvictionPolicy* eviction_;
  KvEventLog* log_;

  std::vector<int32_t> refs_;           // [num_gpu_blocks]
  std::vector<BlockHash> block_hash_;   // [num_gpu_blocks], valid where has_hash_
  std::vector<uint8_t> has_hash_;       // [num_gpu_blocks]
  std::vector<uint64_t> access_count_;  // [num_gpu_blocks], for lfu
  std::deque<BlockId> free_;            // unhashed, ref 0
  std::vector<uint8_t> in_free_;        // [num_gpu_blocks], debug/invariants
  std::unordered_map<BlockHash, BlockId> cache_;  // hash -> block holding that content
  std::unordered_map<RequestId, std::vector<BlockId>> tables_;
  std::unordered_map<RequestId, std::vector<BlockId>> swapped_;  // host block tables
  std::vector<BlockId> cpu_free_;
  uint64_t prefix_queries_ = 0, prefix_hits_ = 0;
  double now_ = 0.0;
  mutable std::vector<BlockId> scratch_;

  BlockId take_block();  // from free list, else evicts a cached block; caller checked capacity
  void release_block(BlockId b);  // ref reached 0
  void uncache(BlockId b);
  void debug_check() const;  // full invariant check in debug builds on small pools
};

// Chained hash of block i's content: mixes the previous block's hash with the block's tokens,
// so equal hashes imply equal prefixes (as vLLM's prefix cache does).
BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens);
// Hashes of the full blocks of a prompt: from token ids when the request has them, else from the
// workload's hash_ids (each covering hash_block_tokens tokens), else none (unique content).
std::vector<BlockHash> prompt_block_hashes(const RequestSpec& r, int32_t block_size);

}  // namespace twinfer
