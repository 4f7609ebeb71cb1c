#include <catch2/catch.hpp>

#include <algorithm>

#include "engine_fixture.h"

using namespace twinfer;
using namespace twinfer::test;

TEST_CASE("every step respects the token budget and max-num-seqs", "[scheduler]") {
  auto o = options(4096, 16, 256, true);
  o.sched.max_num_seqs = 5;
  Harness h(o);
  std::vector<RequestSpec> reqs;
  for (int i = 0; i < 40; ++i) reqs.push_back(req(i, 0.01 * i, 50 + 37 * (i % 7), 20 + i % 5));
  RunRecord& r = h.run(reqs);
  for (const auto& p : h.exec.plans) {
    CHECK(p.num_tokens() <= 256);
    CHECK(p.seqs.size() <= 5);
  }
  CHECK(std::all_of(r.requests.begin(), r.requests.end(),
                    [](const RequestRecord& q) { return q.status == SeqStatus::finished; }));
  for (const auto& q : r.requests) CHECK(q.output_len == q.target_len);
}

TEST_CASE("chunked prefill splits a long prompt and puts decodes first", "[scheduler]") {
  Harness h(options(1024, 16, 32, true));
  RunRecord& r = h.run({req(0, 0.0, 10, 30), req(1, 0.05, 100, 2)});
  // Request 1 arrives while 0 decodes: its 100 prompt tokens go in chunks of 32 - decodes.
  std::vector<int32_t> chunks;
  for (const auto& p : h.exec.plans) {
    bool seen_prefill = false;
    for (const auto& q : p.seqs) {
      if (q.is_prefill) seen_prefill = true;
      else CHECK_FALSE(seen_prefill);  // decodes first
      if (q.id == 1 && q.is_prefill) chunks.push_back(q.num_new_tokens);
    }
  }
  CHECK(chunks == std::vector<int32_t>{31, 31, 31, 7});
  CHECK(r.requests[1].output_len == 2);
}

TEST_CASE("without chunking a step is all prefills or all decodes", "[scheduler]") {
  Harness h(options(1024, 16, 4096, false));
  h.run({req(0, 0.0, 64, 5), req(1, 0.0, 64, 5), req(2, 0.03, 64, 5)});
  for (const auto& p : h.exec.plans) CHECK((p.num_prefill_tokens == 0 || p.num_decode_tokens == 0));
  // First step prefills both requests that arrived at t=0 together.
  REQUIRE(h.exec.plans.size() > 2);
  CHECK(h.exec.plans[0].num_prefill_tokens == 128);
}

TEST_CASE("out of blocks, the last-arrived running request is preempted (recompute)", "[scheduler]") {
  // 8 blocks of 4 tokens. Three requests of 8 prompt tokens each take 6 blocks; they grow.
  auto o = options(8, 4, 4096, false);
  Harness h(o);
  RunRecord& r = h.run({req(0, 0.0, 8, 8), req(1, 0.0, 8, 8), req(2, 0.0, 8, 8)});
  REQUIRE(r.preemptions >= 1);
  CHECK(r.preempted_ids.front() == 2);
  for (const auto& q : r.requests) CHECK(q.status == SeqStatus::finished);
  CHECK(r.requests[2].num_preemptions >= 1);
  CHECK(r.requests[0].num_preemptions == 0);
}

TEST_CASE("lowest-priority and score victims", "[scheduler]") {
  SECTION("lowest-priority preempts the largest priority value") {
    Harness h(options(8, 4, 4096, false), "fcfs", "lowest-priority");
    RunRecord& r = h.run({req(0, 0.0, 8, 8, 5), req(1, 0.0, 8, 8, 0), req(2, 0.0, 8, 8, 1)});
    REQUIRE(r.preemptions >= 1);
    CHECK(r.preempted_ids.front() == 0);
  }
  SECTION("score preempts the highest wait/(priority+1)/generated") {
    Harness h(options(8, 4, 4096, false), "fcfs", "score");
    RunRecord& r = h.run({req(0, 0.0, 8, 8, 3), req(1, 0.0, 8, 8, 0), req(2, 0.0, 8, 8, 3)});
    REQUIRE(r.preemptions >= 1);
    CHECK(r.preempted_ids.front() == 1);
  }
}

TEST_CASE("swap preemption moves blocks to the host and back", "[scheduler]") {
  auto o = options(8, 4, 4096, false);
  o.sched.swap_preemption = true;
  Harness h(o);
  RunRecord& r = h.run({req(0, 0.0, 8, 8), req(1, 0.0, 8, 8), req(2, 0.0, 8, 8)});
  REQUIRE(r.preemptions >= 1);
  size_t outs = 0, ins = 0;
  for (const auto& p : h.exec.plans) {
    outs += p.swap_out.size();
    ins += p.swap_in.size();
  }
  CHECK(outs > 0);
  CHECK(outs == ins);
  for (const auto& q : r.requests) CHECK(q.status == SeqStatus::finished);
  CHECK(h.engine->blocks().num_free_cpu_blocks() == 64);
}

TEST_CASE("static batching admits the next batch only when the whole batch is done", "[scheduler]") {
  auto o = options(1024, 16, 4096, false);
  o.sched.static_batching = true;
  o.sched.max_num_seqs = 2;
  Harness h(o);
  RunRecord& r = h.run({req(0, 0.0, 16, 2), req(1, 0.0, 16, 6), req(2, 0.0, 16, 2)});
  // Request 2 starts only after request 1 (the longest of the first batch) finishes.
  CHECK(r.requests[2].times.first_scheduled >= r.requests[1].times.finished);
  int padded_steps = 0;
  for (const auto& p : h.exec.plans)
    if (p.num_padding_seqs > 0) ++padded_steps;
  CHECK(padded_steps == 4);  // request 0 done after 2 tokens; 1 needs 4 more decode steps
}

TEST_CASE("priority queue serves lower priority values first", "[scheduler]") {
  auto o = options(1024, 16, 4096, false);
  o.sched.max_num_seqs = 1;
  Harness h(o, "priority");
  RunRecord& r = h.run({req(0, 0.0, 16, 4, 0), req(1, 0.001, 16, 4, 9), req(2, 0.002, 16, 4, 1)});
  CHECK(r.requests[2].times.first_scheduled < r.requests[1].times.first_scheduled);
}

TEST_CASE("prefix caching reuses the blocks of an identical prompt", "[scheduler]") {
  auto o = options(64, 4, 4096, false);
  o.blocks.enable_prefix_caching = true;
  o.sched.prefix_caching = true;
  Harness h(o);
  auto a = req(0, 0.0, 16, 2);
  auto b = req(1, 1.0, 16, 2);
  a.hash_ids = b.hash_ids = {42};
  a.hash_block_tokens = b.hash_block_tokens = 16;
  RunRecord& r = h.run({a, b});
  CHECK(r.requests[0].prefix_hit_tokens == 0);
  CHECK(r.requests[1].prefix_hit_tokens == 12);  // 3 of 4 blocks: the last token is recomputed
  CHECK(r.prefix_hit_blocks == 3);
}
