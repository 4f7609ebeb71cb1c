#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "policies/builtin.h"
#include "policies/registry.h"

using namespace twinfer;

namespace {

RequestView view(RequestId id, double arrival) {
  RequestView r;
  r.id = id;
  r.arrival_s = arrival;
  r.max_tokens = 16;
  return r;
}

// The waiting-queue order the scheduler derives from a policy: key, then arrival, then id.
std::vector<RequestId> queue_order(QueuePolicy& p, std::vector<RequestView> rs, double now) {
  std::vector<std::tuple<double, double, RequestId>> keyed;
  for (const RequestView& r : rs) keyed.emplace_back(p.key(r, now), r.arrival_s, r.id);
  std::sort(keyed.begin(), keyed.end());
  std::vector<RequestId> ids;
  for (const auto& k : keyed) ids.push_back(std::get<2>(k));
  return ids;
}

RequestId victim_id(VictimPolicy& p, const std::vector<RequestView>& running, double now) {
  const size_t i = p.choose(running, now);
  REQUIRE(i < running.size());
  return running[i].id;
}

std::vector<BlockId> drain(EvictionPolicy& p) {
  std::vector<BlockId> out;
  while (auto b = p.pop_victim()) out.push_back(*b);
  CHECK(p.size() == 0);
  return out;
}

std::string config_error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    CHECK(e.exit_code() == 2);
    return e.what();
  }
  FAIL("expected a ConfigError");
  return "";
}

}  // namespace

TEST_CASE("fcfs orders by arrival, ties by id", "[policies]") {
  auto p = make_queue_policy("fcfs");
  CHECK(p->name() == "fcfs");
  CHECK_FALSE(p->time_dependent());
  CHECK_FALSE(p->needs_prefix_hits());
  std::vector<RequestView> rs = {view(4, 2.0), view(2, 0.5), view(9, 1.0), view(3, 1.0)};
  rs[0].priority = -5;  // ignored by fcfs
  CHECK(queue_order(*p, rs, 3.0) == std::vector<RequestId>{2, 3, 9, 4});
}

TEST_CASE("priority orders by priority value, lower first, then arrival", "[policies]") {
  auto p = make_queue_policy("priority");
  CHECK_FALSE(p->time_dependent());
  std::vector<RequestView> rs = {view(1, 0.0), view(2, 1.0), view(3, 2.0), view(4, 2.0),
                                 view(5, 3.0)};
  rs[0].priority = 2;
  rs[1].priority = 0;
  rs[2].priority = 1;
  rs[3].priority = 1;
  rs[4].priority = -1;
  CHECK(queue_order(*p, rs, 10.0) == std::vector<RequestId>{5, 2, 3, 4, 1});
  // Not time dependent: the key of a request does not move with the clock.
  CHECK(p->key(rs[0], 0.0) == p->key(rs[0], 1e6));
}

TEST_CASE("sjf uses the known output length, else max_tokens", "[policies]") {
  auto p = make_queue_policy("sjf");
  CHECK_FALSE(p->time_dependent());
  RequestView a = view(1, 0.0);  // 100 + 50 (known) = 150
  a.prompt_len = 100;
  a.output_len = 50;
  a.max_tokens = 1000;
  RequestView b = view(2, 1.0);  // 20 + 200 (max_tokens) = 220
  b.prompt_len = 20;
  b.max_tokens = 200;
  RequestView c = view(3, 2.0);  // 10 + 140 = 150, ties with a, later arrival
  c.prompt_len = 10;
  c.output_len = 140;
  RequestView d = view(4, 3.0);  // 500 + 0 = 500
  d.prompt_len = 500;
  d.output_len = 0;
  CHECK(p->key(a, 0) == 150.0);
  CHECK(p->key(b, 0) == 220.0);
  // Total job length, not remaining: generating tokens does not move the key.
  RequestView a2 = a;
  a2.generated = 40;
  CHECK(p->key(a2, 0) == 150.0);
  CHECK(queue_order(*p, {d, c, b, a}, 5.0) == std::vector<RequestId>{1, 3, 2, 4});
}

TEST_CASE("lpm serves the longest cached prefix first", "[policies]") {
  auto p = make_queue_policy("lpm");
  CHECK(p->time_dependent());
  CHECK(p->needs_prefix_hits());
  std::vector<RequestView> rs = {view(1, 0.0), view(2, 1.0), view(3, 2.0), view(4, 3.0)};
  rs[0].prefix_hit_blocks = 0;
  rs[1].prefix_hit_blocks = 7;
  rs[2].prefix_hit_blocks = 3;
  rs[3].prefix_hit_blocks = 7;
  CHECK(queue_order(*p, rs, 4.0) == std::vector<RequestId>{2, 4, 3, 1});
  // The cache changes: the same request's key follows its hit count.
  rs[0].prefix_hit_blocks = 9;
  CHECK(queue_order(*p, rs, 5.0) == std::vector<RequestId>{1, 2, 4, 3});
}

TEST_CASE("last-arrived picks the latest arrival, ties highest id", "[policies]") {
  auto p = make_victim_policy("last-arrived");
  CHECK(p->name() == "last-arrived");
  // Admission order differs from arrival order (e.g. admitted by priority).
  std::vector<RequestView> running = {view(5, 3.0), view(1, 0.0), view(7, 1.0)};
  CHECK(victim_id(*p, running, 4.0) == 5);
  running.push_back(view(6, 3.0));
  CHECK(victim_id(*p, running, 4.0) == 6);
  running.push_back(view(2, 3.0));
  CHECK(victim_id(*p, running, 4.0) == 6);
  CHECK(victim_id(*p, {view(9, 0.0)}, 1.0) == 9);
}

TEST_CASE("lowest-priority picks the largest priority value, ties latest arrival", "[policies]") {
  auto p = make_victim_policy("lowest-priority");
  std::vector<RequestView> running = {view(1, 0.0), view(2, 1.0), view(3, 2.0), view(4, 0.5)};
  running[0].priority = 3;
  running[1].priority = 1;
  running[2].priority = 0;
  running[3].priority = 3;
  CHECK(victim_id(*p, running, 5.0) == 4);  // priority 3 twice: 4 arrived later than 1
  running[3].arrival_s = 0.0;               // same arrival: higher id
  CHECK(victim_id(*p, running, 5.0) == 4);
  running[1].priority = 8;
  CHECK(victim_id(*p, running, 5.0) == 2);
}

TEST_CASE("score picks the highest waiting / ((priority+1) * max(generated,1))", "[policies]") {
  auto p = make_victim_policy("score");
  std::vector<RequestView> running = {view(1, 0.0), view(2, 4.0), view(3, 6.0)};
  // scores: 10/(1*5) = 2, 6/(2*1) = 3 (generated 0 counts as 1), 4/(1*1) = 4
  running[0].waiting_s = 10.0;
  running[0].generated = 5;
  running[1].waiting_s = 6.0;
  running[1].priority = 1;
  running[1].generated = 0;
  running[2].waiting_s = 4.0;
  running[2].generated = 1;
  CHECK(victim_id(*p, running, 10.0) == 3);
  running[2].generated = 4;  // 4/4 = 1: now request 2 (score 3) is highest
  CHECK(victim_id(*p, running, 10.0) == 2);
  running[1].priority = -3;  // negative priorities count as 0: 6/1 = 6
  running[0].generated = 2;  // 10/2 = 5
  CHECK(victim_id(*p, running, 10.0) == 2);
  // Equal scores: latest arrival, then highest id.
  running[0].waiting_s = 12.0;  // 12/2 = 6, ties with request 2 (arrived later)
  CHECK(victim_id(*p, running, 10.0) == 2);
  running[0].arrival_s = 4.0;   // same arrival as 2: higher id wins
  CHECK(victim_id(*p, running, 10.0) == 2);
  running[0].id = 8;
  CHECK(victim_id(*p, running, 10.0) == 8);
}

TEST_CASE("lru evicts in insertion order, with erase and re-insertion", "[policies]") {
  auto p = make_eviction_policy("lru");
  CHECK(p->name() == "lru");
  CHECK_FALSE(p->pop_victim().has_value());
  // Freed together, tail first: 12, 11, 10; access counts and times are ignored.
  p->insert(12, 9, 5.0);
  p->insert(11, 1, 5.0);
  p->insert(10, 1, 5.0);
  p->insert(3, 0, 6.0);
  p->insert(700, 0, 7.0);  // grows the id-indexed links
  CHECK(p->size() == 5);
  CHECK(p->pop_victim() == 12);
  p->erase(10);             // taken back by a prefix hit
  p->erase(10);             // absent: no effect
  p->erase(5000);           // never seen: no effect
  CHECK(p->size() == 3);
  p->insert(10, 2, 8.0);    // freed again: now the most recent
  p->insert(12, 0, 9.0);    // evicted earlier, cached again
  p->insert(3, 0, 10.0);    // already present: moves to the tail
  CHECK(p->size() == 5);
  CHECK(drain(*p) == std::vector<BlockId>{11, 700, 10, 12, 3});
  p->insert(4, 0, 0.0);
  CHECK(p->pop_victim() == 4);
  CHECK_FALSE(p->pop_victim().has_value());
}

TEST_CASE("lfu evicts fewest accesses, then oldest access, then insertion", "[policies]") {
  auto p = make_eviction_policy("lfu");
  CHECK(p->name() == "lfu");
  CHECK_FALSE(p->pop_victim().has_value());
  p->insert(1, 3, 1.0);
  p->insert(2, 1, 5.0);
  p->insert(3, 1, 2.0);
  p->insert(4, 1, 2.0);  // ties 3 on count and time: inserted later
  p->insert(5, 2, 0.5);
  CHECK(p->size() == 5);
  CHECK(p->pop_victim() == 3);
  p->erase(4);
  p->erase(4);
  CHECK(p->size() == 3);
  p->insert(4, 5, 9.0);  // re-inserted with more accesses
  p->insert(2, 2, 0.5);  // already present: replaced, ties 5 and now inserted after it
  CHECK(drain(*p) == std::vector<BlockId>{5, 2, 1, 4});
  p->insert(9, 0, 0.0);
  CHECK(p->pop_victim() == 9);
  CHECK_FALSE(p->pop_victim().has_value());
}

TEST_CASE("lru matches a reference model over 10000 random operations", "[policies]") {
  auto p = make_eviction_policy("lru");
  std::deque<BlockId> ref;  // front: next victim
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> op(0, 9), block(0, 63);
  for (int step = 0; step < 10000; ++step) {
    const int o = op(rng);
    const BlockId b = block(rng);
    const auto it = std::find(ref.begin(), ref.end(), b);
    if (o < 5) {
      if (it != ref.end()) ref.erase(it);
      ref.push_back(b);
      p->insert(b, static_cast<uint64_t>(o), step * 0.1);
    } else if (o < 8) {
      if (it != ref.end()) ref.erase(it);
      p->erase(b);
    } else {
      const std::optional<BlockId> got = p->pop_victim();
      if (ref.empty()) {
        REQUIRE_FALSE(got.has_value());
      } else {
        REQUIRE(got.has_value());
        REQUIRE(*got == ref.front());
        ref.pop_front();
      }
    }
    REQUIRE(p->size() == ref.size());
  }
  std::vector<BlockId> rest(ref.begin(), ref.end());
  CHECK(drain(*p) == rest);
}

TEST_CASE("lfu matches a reference model over 10000 random operations", "[policies]") {
  auto p = make_eviction_policy("lfu");
  struct Ref {
    uint64_t count;
    double last;
    uint64_t seq;
    BlockId b;
  };
  std::vector<Ref> ref;
  uint64_t seq = 0;
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> op(0, 9), block(0, 47), count(0, 4), time(0, 20);
  auto remove = [&](BlockId b) {
    ref.erase(std::remove_if(ref.begin(), ref.end(), [b](const Ref& r) { return r.b == b; }),
              ref.end());
  };
  for (int step = 0; step < 10000; ++step) {
    const int o = op(rng);
    const BlockId b = block(rng);
    if (o < 5) {
      const uint64_t c = static_cast<uint64_t>(count(rng));
      const double t = time(rng);  // few distinct values: many exact ties
      remove(b);
      ref.push_back(Ref{c, t, ++seq, b});
      p->insert(b, c, t);
    } else if (o < 7) {
      remove(b);
      p->erase(b);
    } else {
      const std::optional<BlockId> got = p->pop_victim();
      if (ref.empty()) {
        REQUIRE_FALSE(got.has_value());
        continue;
      }
      auto best = std::min_element(ref.begin(), ref.end(), [](const Ref& x, const Ref& y) {
        return std::tie(x.count, x.last, x.seq) < std::tie(y.count, y.last, y.seq);
      });
      REQUIRE(got.has_value());
      REQUIRE(*got == best->b);
      ref.erase(best);
    }
    REQUIRE(p->size() == ref.size());
  }
}

TEST_CASE("block size: fixed returns the flag, auto follows the 5% waste rule", "[policies]") {
  auto fixed = make_block_size_policy("fixed", 32);
  CHECK(fixed->name() == "fixed");
  CHECK(fixed->choose(4096, 3.0, 1000.0) == 32);

  auto a = make_block_size_policy("auto", 16);
  CHECK(a->name() == "auto");
  // (B - 1) / 2 < L / 19: B < 2L/19 + 1.
  CHECK(a->choose(8192, 512.0, 128.0) == 32);    // bound 54.9
  CHECK(a->choose(8192, 1024.0, 128.0) == 64);   // bound 108.8
  CHECK(a->choose(8192, 2048.0, 128.0) == 128);  // bound 216.6, capped at 128
  CHECK(a->choose(8192, 100.0, 128.0) == 8);     // bound 11.5
  CHECK(a->choose(8192, 10.0, 128.0) == 8);      // nothing meets it: least waste
  CHECK(a->choose(40, 4096.0, 128.0) == 32);     // never beyond max_model_len
  CHECK(a->choose(4, 4096.0, 128.0) == 8);       // floor of the range
  CHECK(a->choose(0, 4096.0, 128.0) == 128);     // 0: no model limit known
  CHECK(a->choose(8192, 0.0, 128.0) == 16);      // no information: vLLM's default
  CHECK(a->choose(8192, std::nan(""), 128.0) == 16);
  // The rule itself over a sweep: the answer meets the bound and its double would not.
  for (double L = 1.0; L < 5000.0; L *= 1.07) {
    const int32_t b = policies::auto_block_size(0, L);
    const auto frac = [L](int32_t s) { return (s - 1) / 2.0 / (L + (s - 1) / 2.0); };
    if (b > 8) CHECK(frac(b) < 0.05);
    if (b < 128) CHECK(frac(2 * b) >= 0.05);
  }
}

TEST_CASE("registry builds every listed name and rejects others", "[policies]") {
  for (const std::string& n : queue_policy_names()) CHECK(make_queue_policy(n)->name() == n);
  for (const std::string& n : victim_policy_names()) CHECK(make_victim_policy(n)->name() == n);
  for (const std::string& n : eviction_policy_names())
    CHECK(make_eviction_policy(n)->name() == n);
  for (const std::string& n : block_size_policy_names())
    CHECK(make_block_size_policy(n, 16)->name() == n);

  const std::string q = config_error_text([] { make_queue_policy("FCFS"); });
  CHECK(q == "--scheduling-policy: unknown policy 'FCFS'; allowed values: fcfs, priority, sjf, "
             "lpm, lua:FILE");
  const std::string v = config_error_text([] { make_victim_policy("oldest"); });
  CHECK(v.find("--preemption-victim") != std::string::npos);
  CHECK(v.find("last-arrived, lowest-priority, score, lua:FILE") != std::string::npos);
  const std::string e = config_error_text([] { make_eviction_policy("fifo"); });
  CHECK(e.find("--eviction-policy") != std::string::npos);
  CHECK(e.find("lru, lfu, lua:FILE") != std::string::npos);
  const std::string b = config_error_text([] { make_block_size_policy("big", 16); });
  CHECK(b.find("fixed, auto") != std::string::npos);
  CHECK(config_error_text([] { make_block_size_policy("fixed", 0); }).find("got 0") !=
        std::string::npos);
}

TEST_CASE("registry delegates lua:FILE to the registered factories", "[policies]") {
  register_lua_policy_factories({});
  const std::string none = config_error_text([] { make_queue_policy("lua:my.lua"); });
  CHECK(none.find("--scheduling-policy lua:my.lua") != std::string::npos);
  CHECK(none.find("not available in this build") != std::string::npos);
  config_error_text([] { make_eviction_policy("lua:x.lua"); });

  std::vector<std::string> seen;
  LuaFactories f;
  f.queue = [&seen](const std::string& file) {
    seen.push_back(file);
    return policies::make_sjf_queue();
  };
  f.victim = [](const std::string&) { return std::unique_ptr<VictimPolicy>(); };
  register_lua_policy_factories(f);
  CHECK(make_queue_policy("lua:dir/p.lua")->name() == "sjf");
  CHECK(seen == std::vector<std::string>{"dir/p.lua"});
  CHECK(config_error_text([] { make_queue_policy("lua:"); }).find("names no file") !=
        std::string::npos);
  CHECK(config_error_text([] { make_victim_policy("lua:v.lua"); }).find("built nothing") !=
        std::string::npos);
  // Kinds without a factory stay unavailable.
  CHECK(config_error_text([] { make_eviction_policy("lua:e.lua"); })
            .find("not available in this build") != std::string::npos);
  register_lua_policy_factories({});
}
