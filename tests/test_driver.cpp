#include <catch2/catch.hpp>

#include "engine_fixture.h"

using namespace twinfer;
using namespace twinfer::test;

TEST_CASE("events pop in (time, type, id) order", "[driver]") {
  EventQueue q;
  q.push({1.0, EventType::step_end, 3});
  q.push({1.0, EventType::arrival, 9});
  q.push({0.5, EventType::step_end, 1});
  q.push({1.0, EventType::arrival, 2});
  CHECK(q.pop().id == 1);
  CHECK(q.pop().id == 2);
  CHECK(q.pop().id == 9);
  CHECK(q.pop().type == EventType::step_end);
}

TEST_CASE("the virtual clock jumps over idle time and steps take the executor's time", "[driver]") {
  Harness h(options(256));
  RunRecord& r = h.run({req(0, 0.0, 10, 2), req(1, 100.0, 10, 1)});
  // Request 0: prefill step 0.010 + 0.010 = 0.02, decode step 0.011.
  CHECK(r.requests[0].times.first_token == Approx(0.020));
  CHECK(r.requests[0].times.finished == Approx(0.031));
  // Idle until t=100, then the second request starts at once.
  CHECK(r.requests[1].times.first_scheduled == Approx(100.0));
  CHECK(r.requests[1].times.finished == Approx(100.020));
  for (size_t i = 1; i < h.events.size(); ++i) {
    const auto& a = h.events[i - 1];
    const auto& b = h.events[i];
    CHECK((a.time < b.time || (a.time == b.time && a.type <= b.type)));
  }
}

TEST_CASE("runs are deterministic", "[driver]") {
  auto go = [] {
    Harness h(options(64, 8, 128, true));
    std::vector<RequestSpec> reqs;
    for (int i = 0; i < 60; ++i) reqs.push_back(req(i, 0.003 * i, 20 + (i * 13) % 90, 3 + i % 11));
    RunRecord r = h.run(reqs);
    std::vector<double> v;
    for (const auto& s : r.steps) v.push_back(s.start_s + s.num_prefill_tokens * 1e3 + s.kv_blocks_used);
    return std::make_pair(v, r.preemptions);
  };
  CHECK(go() == go());
}

TEST_CASE("a request that can never fit fails alone", "[driver]") {
  auto o = options(4, 4, 4096, false);
  Harness h(o);
  RunRecord& r = h.run({req(0, 0.0, 8, 2), req(1, 0.0, 40, 2), req(2, 0.0, 8, 2)});
  CHECK(r.requests[0].status == SeqStatus::finished);
  CHECK(r.requests[1].status == SeqStatus::failed);
  CHECK_THAT(r.requests[1].error, Catch::Contains("KV blocks"));
  CHECK(r.requests[2].status == SeqStatus::finished);
}
