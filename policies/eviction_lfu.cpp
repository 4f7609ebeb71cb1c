// Least frequently used: evicts the cached block with the smallest access_count; ties go to the
// least recent last_access, then to the earliest insertion. A NaN last_access counts as the
// oldest possible time, so the order stays a strict weak order.
//
// A binary min-heap with lazy deletion: each insertion gets a fresh sequence number, and a heap
// entry is live only while its block's current sequence number matches. erase() just clears the
// block's number (O(1)); pop_victim() discards stale entries on the way (amortized O(log n)).
// When stale entries outnumber live ones the heap is rebuilt in O(n), which bounds memory at
// about twice the live set. The heap vector is reused, so steady state allocates nothing.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <vector>

#include "policies/builtin.h"

namespace twinfer::policies {
namespace {

struct Entry {
  uint64_t count;
  double last;
  uint64_t seq;  // insertion order; unique, so the order is total
  BlockId block;
};

// std heap functions build a max-heap; "a below b" when a should be evicted later.
struct EvictLater {
  bool operator()(const Entry& a, const Entry& b) const {
    if (a.count != b.count) return a.count > b.count;
    if (a.last != b.last) return a.last > b.last;
    return a.seq > b.seq;
  }
};

class LfuEviction final : public EvictionPolicy {
 public:
  std::string name() const override { return "lfu"; }

  // Inserting a block already present replaces its entry (new count, time and insertion order).
  void insert(BlockId b, uint64_t access_count, double last_access) override {
    assert(b >= 0);
    const size_t i = static_cast<size_t>(b);
    if (i >= live_seq_.size()) live_seq_.resize(std::max(i + 1, live_seq_.size() * 2), 0);
    if (live_seq_[i] == 0) ++size_;
    const double last =
        std::isnan(last_access) ? -std::numeric_limits<double>::infinity() : last_access;
    live_seq_[i] = ++next_seq_;
    heap_.push_back(Entry{access_count, last, next_seq_, b});
    std::push_heap(heap_.begin(), heap_.end(), EvictLater{});
    maybe_compact();
  }

  // Erasing a block that is not present does nothing.
  void erase(BlockId b) override {
    if (b < 0 || static_cast<size_t>(b) >= live_seq_.size()) return;
    uint64_t& s = live_seq_[static_cast<size_t>(b)];
    if (s == 0) return;
    s = 0;
    --size_;
    maybe_compact();
  }

  std::optional<BlockId> pop_victim() override {
    while (!heap_.empty()) {
      const Entry top = heap_.front();
      std::pop_heap(heap_.begin(), heap_.end(), EvictLater{});
      heap_.pop_back();
      uint64_t& s = live_seq_[static_cast<size_t>(top.block)];
      if (s == top.seq) {
        s = 0;
        --size_;
        return top.block;
      }
    }
    return std::nullopt;
  }

  size_t size() const override { return size_; }

 private:
  bool is_live(const Entry& e) const { return live_seq_[static_cast<size_t>(e.block)] == e.seq; }

  void maybe_compact() {
    if (heap_.size() <= 2 * size_ + 64) return;
    heap_.erase(std::remove_if(heap_.begin(), heap_.end(),
                               [this](const Entry& e) { return !is_live(e); }),
                heap_.end());
    std::make_heap(heap_.begin(), heap_.end(), EvictLater{});
  }

  std::vector<Entry> heap_;          // live entries plus stale ones awaiting removal
  std::vector<uint64_t> live_seq_;   // [max block id + 1]: seq of the live entry, 0 if absent
  uint64_t next_seq_ = 0;
  size_t size_ = 0;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lfu_eviction() { return std::make_unique<LfuEviction>(); }

}  // namespace twinfer::policies
