// Least recently used: evicts the cached block that was inserted (freed by its last sequence)
// longest ago. A block's last use is the moment it was freed, so insertion order is recency.
//
// An intrusive doubly linked list threaded through vectors indexed by BlockId: insert appends at
// the tail, erase unlinks, pop_victim takes the head, all O(1) without allocation once the
// vectors cover the block ids in use. Order is exactly the insertion order, so blocks freed
// together leave in the order the block manager freed them (tail blocks first).
#include <algorithm>
#include <cassert>
#include <vector>

#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

class LruEviction final : public EvictionPolicy {
 public:
  std::string name() const override { return "lru"; }

  // Inserting a block already present moves it to the tail (it counts as freed again).
  void insert(BlockId b, uint64_t /*access_count*/, double /*last_access*/) override {
    assert(b >= 0);
    const size_t i = static_cast<size_t>(b);
    if (i >= in_.size()) grow(i + 1);
    if (in_[i]) unlink(b);
    prev_[i] = tail_;
    next_[i] = kNone;
    if (tail_ == kNone) head_ = b;
    else next_[static_cast<size_t>(tail_)] = b;
    tail_ = b;
    in_[i] = 1;
    ++size_;
  }

  // Erasing a block that is not present does nothing.
  void erase(BlockId b) override {
    if (b < 0 || static_cast<size_t>(b) >= in_.size() || !in_[static_cast<size_t>(b)]) return;
    unlink(b);
  }

  std::optional<BlockId> pop_victim() override {
    if (head_ == kNone) return std::nullopt;
    const BlockId b = head_;
    unlink(b);
    return b;
  }

  size_t size() const override { return size_; }

 private:
  static constexpr BlockId kNone = -1;

  void grow(size_t n) {
    // Geometric growth so a pool discovered block by block costs O(log n) reallocations.
    const size_t cap = std::max(n, in_.size() * 2);
    prev_.resize(cap, kNone);
    next_.resize(cap, kNone);
    in_.resize(cap, 0);
  }

  void unlink(BlockId b) {
    const size_t i = static_cast<size_t>(b);
    const BlockId p = prev_[i], n = next_[i];
    if (p == kNone) head_ = n;
    else next_[static_cast<size_t>(p)] = n;
    if (n == kNone) tail_ = p;
    else prev_[static_cast<size_t>(n)] = p;
    prev_[i] = next_[i] = kNone;
    in_[i] = 0;
    --size_;
  }

  std::vector<BlockId> prev_, next_;  // [max block id + 1]: list links, kNone at the ends
  std::vector<uint8_t> in_;           // [max block id + 1]: 1 while the block is in the set
  BlockId head_ = kNone;              // least recently freed: the next victim
  BlockId tail_ = kNone;              // most recently freed
  size_t size_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lru_eviction() { return std::make_unique<LruEviction>(); }

}  // namespace twinfer::policies
