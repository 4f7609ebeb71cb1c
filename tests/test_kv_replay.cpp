// The KV event log must replay the block map exactly: applying every event up to step k
// reproduces the used and cached block counts the engine reported for step k.
#include <catch2/catch.hpp>

#include "engine_fixture.h"

using namespace twinfer;
using namespace twinfer::test;

namespace {

void check_replay(const RunRecord& r, int32_t num_blocks) {
  std::vector<int32_t> ref(static_cast<size_t>(num_blocks), 0);
  std::vector<uint8_t> hashed(static_cast<size_t>(num_blocks), 0);
  size_t e = 0;
  for (const StepRecord& row : r.steps) {
    for (; e < r.kv.events.size() && r.kv.events[e].step <= row.step; ++e) {
      const KvEvent& ev = r.kv.events[e];
      for (uint32_t i = ev.b0; i < ev.b1; ++i) {
        const auto b = static_cast<size_t>(r.kv.ids[i]);
        switch (ev.type) {
          case KvEventType::allocate: ref[b] = 1; hashed[b] = 0; break;
          case KvEventType::swap_in: ref[b] = 1; hashed[b] = 0; break;
          case KvEventType::share: case KvEventType::fork: ++ref[b]; break;
          case KvEventType::free: case KvEventType::swap_out: case KvEventType::cow: --ref[b]; break;
          case KvEventType::cache: hashed[b] = 1; break;
          case KvEventType::evict: hashed[b] = 0; break;
        }
        REQUIRE(ref[b] >= 0);
      }
      if (ev.type == KvEventType::cow)
        for (uint32_t i = ev.b1; i < ev.b2; ++i) ref[static_cast<size_t>(r.kv.ids[i])] = 1;
    }
    int32_t used = 0, cached = 0;
    for (size_t b = 0; b < ref.size(); ++b) {
      used += ref[b] > 0;
      cached += ref[b] == 0 && hashed[b];
    }
    INFO("step " << row.step);
    REQUIRE(used == row.kv_blocks_used);
    REQUIRE(cached == row.kv_blocks_cached);
  }
}

std::vector<RequestSpec> shared_prefix_requests(int n) {
  std::vector<RequestSpec> reqs;
  for (int i = 0; i < n; ++i) {
    auto r = req(i, 0.004 * i, 40 + (i * 7) % 50, 4 + i % 9);
    r.hash_block_tokens = 8;
    for (int j = 0; j * 8 < r.prompt_len; ++j) r.hash_ids.push_back(j < 3 ? static_cast<BlockHash>(j) : 1000 * static_cast<BlockHash>(i) + j);
    reqs.push_back(r);
  }
  return reqs;
}

}  // namespace

TEST_CASE("kv events replay to the step rows with prefix caching and recompute", "[kvreplay]") {
  auto o = options(48, 8, 96, true);
  o.blocks.enable_prefix_caching = o.sched.prefix_caching = true;
  Harness h(o);
  RunRecord& r = h.run(shared_prefix_requests(40));
  CHECK(r.prefix_hit_blocks > 0);
  CHECK(r.preemptions > 0);
  check_replay(r, 48);
}

TEST_CASE("kv events replay to the step rows with swapping", "[kvreplay]") {
  auto o = options(40, 8, 4096, false);
  o.sched.swap_preemption = true;
  Harness h(o);
  RunRecord& r = h.run(shared_prefix_requests(30));
  CHECK(r.preemptions > 0);
  check_replay(r, 40);
}
