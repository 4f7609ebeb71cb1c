#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

#include "core/block_manager.h"
#include "policies/registry.h"

using namespace twinfer;

namespace {
std::vector<BlockId> table(const BlockManager& bm, RequestId s) {
  auto t = bm.block_table(s);
  return {t.begin(), t.end()};
}
}  // namespace

TEST_CASE("allocation hands out the lowest free ids in order", "[blocks]") {
  KvEventLog log;
  BlockManager bm({8, 0, 4, false}, nullptr, &log);
  REQUIRE(bm.can_allocate(1, 10));
  bm.allocate(1, 10);  // 3 blocks
  CHECK(table(bm, 1) == std::vector<BlockId>{0, 1, 2});
  bm.allocate(2, 4);
  CHECK(table(bm, 2) == std::vector<BlockId>{3});
  bm.allocate(1, 13);  // grows by one
  CHECK(table(bm, 1) == std::vector<BlockId>{0, 1, 2, 4});
  CHECK(bm.num_free_blocks() == 3);
  CHECK_FALSE(bm.can_allocate(3, 13));
  CHECK(bm.can_allocate(3, 12));
  CHECK_FALSE(bm.can_allocate(3, 12, {}, 1));  // watermark
  bm.free(1);
  // Freed blocks go to the back of the free list, tail first.
  bm.allocate(3, 16);
  CHECK(table(bm, 3) == std::vector<BlockId>{5, 6, 7, 4});
  CHECK(bm.check_invariants().empty());
  REQUIRE(log.events.size() == 5);
  CHECK(log.events[3].type == KvEventType::free);
}

TEST_CASE("prefix cache shares full blocks and evicts in LRU order, tail first", "[blocks]") {
  auto lru = make_eviction_policy("lru");
  KvEventLog log;
  BlockManager bm({6, 0, 4, true}, lru.get(), &log);
  std::vector<BlockHash> h = {11, 22, 33};
  bm.allocate(1, 12);
  bm.cache_blocks(1, 0, h);
  CHECK(bm.count_prefix_hits(h) == 3);
  CHECK(bm.count_prefix_hits(std::vector<BlockHash>{11, 99}) == 1);
  // A second sequence shares the first two blocks.
  std::vector<BlockHash> h2 = {11, 22};
  REQUIRE(bm.can_allocate(2, 10, h2));
  CHECK(bm.allocate(2, 10, h2) == 8);
  CHECK(table(bm, 2) == std::vector<BlockId>{0, 1, 3});
  CHECK(bm.ref_count(0) == 2);
  CHECK(bm.ref_count(2) == 1);
  bm.free(1);  // block 2 (hash 33) becomes cached; 0 and 1 still used by seq 2
  CHECK(bm.num_cached_blocks() == 1);
  bm.free(2);  // frees 3 (unhashed) then 1, 0 (hashed, tail first)
  CHECK(bm.num_cached_blocks() == 3);
  CHECK(bm.check_invariants().empty());
  // Free list: 4, 5, 3. Then evictions in LRU order: 2 (freed first), then 1, then 0.
  bm.allocate(3, 4 * 6);
  CHECK(table(bm, 3) == std::vector<BlockId>{4, 5, 3, 2, 1, 0});
  std::vector<BlockId> evicted;
  for (const auto& e : log.events)
    if (e.type == KvEventType::evict) evicted.push_back(log.ids[e.b0]);
  CHECK(evicted == std::vector<BlockId>{2, 1, 0});
  CHECK(bm.count_prefix_hits(h) == 0);
  CHECK(bm.check_invariants().empty());
}

TEST_CASE("a hit on a cached unreferenced block revives it", "[blocks]") {
  auto lru = make_eviction_policy("lru");
  BlockManager bm({4, 0, 2, true}, lru.get(), nullptr);
  std::vector<BlockHash> h = {7, 8};
  bm.allocate(1, 4);
  bm.cache_blocks(1, 0, h);
  bm.free(1);
  CHECK(bm.num_free_blocks() == 4);
  // Needs 3 blocks: 2 hits (taken from the evictable pool) + 1 fresh; 4 available in all.
  REQUIRE(bm.can_allocate(2, 6, h));
  CHECK_FALSE(bm.can_allocate(2, 6, h, 2));
  CHECK(bm.allocate(2, 6, h) == 4);
  CHECK(table(bm, 2) == std::vector<BlockId>{0, 1, 2});
  CHECK(bm.num_cached_blocks() == 0);
  CHECK(bm.prefix_hits() == 2);
  CHECK(bm.check_invariants().empty());
}

TEST_CASE("fork shares blocks and a write copies on write", "[blocks]") {
  KvEventLog log;
  BlockManager bm({6, 0, 4, false}, nullptr, &log);
  bm.allocate(1, 6);  // blocks 0, 1 (block 1 half full)
  bm.fork(1, 2);
  CHECK(bm.ref_count(1) == 2);
  CHECK(bm.can_write(2, 6));
  auto c = bm.prepare_write(2, 6);
  REQUIRE(c);
  CHECK(c->first == 1);
  CHECK(c->second == 2);
  CHECK(table(bm, 2) == std::vector<BlockId>{0, 2});
  CHECK(bm.ref_count(1) == 1);
  CHECK_FALSE(bm.prepare_write(1, 6));  // parent now owns block 1 alone
  bm.free(1);
  bm.free(2);
  CHECK(bm.num_free_blocks() == 6);
  CHECK(bm.check_invariants().empty());
}

TEST_CASE("swap out and back in restores the table size and frees host blocks", "[blocks]") {
  KvEventLog log;
  BlockManager bm({4, 3, 4, false}, nullptr, &log);
  bm.allocate(1, 12);
  bm.allocate(2, 4);
  REQUIRE(bm.can_swap_out(1));
  auto out = bm.swap_out(1);
  REQUIRE(out.size() == 3);
  CHECK(out[0] == std::make_pair(BlockId{0}, BlockId{0}));
  CHECK(out[2] == std::make_pair(BlockId{2}, BlockId{2}));
  CHECK(bm.is_swapped(1));
  CHECK(bm.num_free_cpu_blocks() == 0);
  CHECK_FALSE(bm.can_swap_out(2));  // host pool full
  CHECK(bm.num_free_blocks() == 3);
  REQUIRE(bm.can_swap_in(1));
  CHECK_FALSE(bm.can_swap_in(1, 1));  // a reserve of one more block does not fit
  auto in = bm.swap_in(1);
  REQUIRE(in.size() == 3);
  CHECK(table(bm, 1).size() == 3);
  CHECK(bm.num_free_cpu_blocks() == 3);
  CHECK_FALSE(bm.can_swap_in(1));
  CHECK(bm.check_invariants().empty());
}

TEST_CASE("random operation sequences keep every invariant", "[blocks][property]") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    auto pol = make_eviction_policy(seed % 2 ? "lru" : "lfu");
    const bool caching = seed % 3 != 0;
    BlockManager bm({64, 16, 4, caching}, pol.get(), nullptr);
    std::map<RequestId, int64_t> tokens;  // live sequences and their length
    std::set<RequestId> swapped;
    RequestId next = 0;
    for (int op = 0; op < 3000; ++op) {
      const int kind = static_cast<int>(rng() % 6);
      if (kind == 0 || tokens.empty()) {  // new sequence, maybe sharing a prefix
        const int64_t len = 1 + static_cast<int64_t>(rng() % 40);
        std::vector<BlockHash> h;
        for (int64_t i = 0; i < len / 4; ++i) h.push_back(1000 * (rng() % 3) + static_cast<BlockHash>(i));
        const int32_t hits = bm.count_prefix_hits(h);
        std::span<const BlockHash> hit(h.data(), static_cast<size_t>(hits));
        if (bm.can_allocate(next, len, hit)) {
          bm.allocate(next, len, hit);
          bm.cache_blocks(next, 0, h);
          tokens[next] = len;
        }
        ++next;
      } else {
        auto it = tokens.begin();
        std::advance(it, static_cast<long>(rng() % tokens.size()));
        const RequestId s = it->first;
        if (kind == 1 || kind == 2) {  // grow
          if (!swapped.count(s) && bm.can_allocate(s, it->second + 5)) {
            bm.allocate(s, it->second + 5);
            it->second += 5;
          }
        } else if (kind == 3) {  // finish
          if (swapped.count(s)) {
            if (bm.can_swap_in(s)) {
              bm.swap_in(s);
              swapped.erase(s);
            }
          } else {
            bm.free(s);
            tokens.erase(it);
          }
        } else if (kind == 4 && !swapped.count(s) && bm.can_swap_out(s)) {
          bm.swap_out(s);
          swapped.insert(s);
        } else if (kind == 5 && !swapped.count(s)) {
          const RequestId child = next++;
          bm.fork(s, child);
          tokens[child] = it->second;
          if (bm.can_write(child, it->second - 1)) bm.prepare_write(child, it->second - 1);
        }
      }
      const std::string err = bm.check_invariants();
      INFO("seed " << seed << " op " << op);
      REQUIRE(err.empty());
    }
    for (auto& [s, len] : tokens) {
      if (swapped.count(s)) continue;
      bm.free(s);
    }
    CHECK(bm.num_free_blocks() == 64);
  }
}
