#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "core/sampling.h"

using twinfer::SamplingParams;
using twinfer::sample_token;
using twinfer::sampling_key;
using twinfer::validate_sampling;

namespace {

int32_t draw(std::vector<float> logits, const SamplingParams& p, uint64_t key,
             std::vector<int32_t> output = {}, std::vector<int64_t> eos = {}) {
  return sample_token(logits, p, {}, output, eos, key);
}

std::vector<float> log_probs(std::vector<double> p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::map<int32_t, int> histogram(const std::vector<float>& logits, const SamplingParams& p, int n) {
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[draw(logits, p, sampling_key(p, 1234, 5, i))];
  return h;
}

// Uniform of a key: the top 53 bits of splitmix64's output function, as a double in [0, 1).
double unit(uint64_t key) {
  uint64_t z = key + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// The documented algorithm written plainly (no top-k): with top-p, full sort, nucleus, min-p,
// inverse CDF in that order; without, min-p then inverse CDF in ascending id order.
int32_t reference_draw(std::vector<float> l, const SamplingParams& p, uint64_t key) {
  const double t = p.temperature;
  for (float& x : l) x /= static_cast<float>(t);
  const float m = *std::max_element(l.begin(), l.end());
  std::vector<std::pair<float, int32_t>> v;
  double total = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    const float q = std::exp(l[i] - m);
    total += q;
    if (q > 0) v.emplace_back(q, static_cast<int32_t>(i));
  }
  if (p.top_p < 1) {
    std::sort(v.begin(), v.end(), [](auto a, auto b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  } else {  // v stays in ascending id order; min-p drops tokens anywhere in it
    std::erase_if(v, [&p](auto e) { return e.first < static_cast<float>(p.min_p); });
  }
  size_t end = v.size();
  if (p.top_p < 1) {
    double cum = 0;
    size_t r = 0;
    while (r < v.size() && cum < p.top_p * total) cum += v[r++].first;
    end = r;
  }
  size_t kept = 0;
  while (kept < end && v[kept].first >= static_cast<float>(p.min_p)) ++kept;
  double mass = 0;
  for (size_t r = 0; r < kept; ++r) mass += v[r].first;
  const double target = unit(key) * mass;
  double cum = 0;
  for (size_t r = 0; r < kept; ++r) {
    cum += v[r].first;
    if (cum > target) return v[r].second;
  }
  return v[kept - 1].second;
}

}  // namespace

TEST_CASE("sampling validation names the parameter, value and rule", "[sampling]") {
  auto msg = [](auto edit) {
    SamplingParams p;
    edit(p);
    auto r = validate_sampling(p, 100);
    return r ? *r : std::string("valid");
  };
  CHECK(msg([](SamplingParams&) {}) == "valid");
  CHECK(msg([](SamplingParams& p) { p.temperature = -0.5; }) == "temperature must be non-negative, got -0.5");
  CHECK(msg([](SamplingParams& p) { p.temperature = NAN; }) == "temperature must be non-negative, got nan");
  CHECK(msg([](SamplingParams& p) { p.top_p = 1.5; }) == "top_p must be in (0, 1], got 1.5");
  CHECK(msg([](SamplingParams& p) { p.top_p = 0; }) == "top_p must be in (0, 1], got 0");
  CHECK(msg([](SamplingParams& p) { p.top_k = -2; }) == "top_k must be -1 or 0 (disable), or at least 1, got -2");
  CHECK(msg([](SamplingParams& p) { p.top_k = 0; }) == "valid");
  CHECK(msg([](SamplingParams& p) { p.min_p = 1.25; }) == "min_p must be in [0, 1], got 1.25");
  CHECK(msg([](SamplingParams& p) { p.presence_penalty = 2.5; }) == "presence_penalty must be in [-2, 2], got 2.5");
  CHECK(msg([](SamplingParams& p) { p.frequency_penalty = -3; }) == "frequency_penalty must be in [-2, 2], got -3");
  CHECK(msg([](SamplingParams& p) { p.repetition_penalty = 0; }) == "repetition_penalty must be greater than zero, got 0");
  CHECK(msg([](SamplingParams& p) { p.max_tokens = 0; }) == "max_tokens must be at least 1, got 0");
  CHECK(msg([](SamplingParams& p) { p.min_tokens = -1; }) == "min_tokens must be greater than or equal to 0, got -1");
  CHECK(msg([](SamplingParams& p) { p.min_tokens = 17; }) == "min_tokens must be less than or equal to max_tokens=16, got 17");
  CHECK(msg([](SamplingParams& p) { p.stop_token_ids = {3, 100}; }) == "stop_token_ids must be in [0, 100), got 100");
  CHECK(msg([](SamplingParams& p) { p.stop_token_ids = {-1}; }) == "stop_token_ids must be in [0, 100), got -1");
}

TEST_CASE("greedy is argmax with the lowest id on ties", "[sampling]") {
  SamplingParams p;
  p.temperature = 0;
  CHECK(draw({0.1f, 2.0f, -1.0f, 2.0f}, p, 1) == 1);
  CHECK(draw({-INFINITY, -INFINITY, -3.0f}, p, 1) == 2);
  CHECK(draw({NAN, 1.0f, 0.0f}, p, 1) == 1);
  // Below vLLM's 1e-5 epsilon the temperature means greedy; just above, a clear winner still wins.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> l(64);
    for (float& x : l) x = nd(rng);
    SamplingParams g;
    g.temperature = 0;
    const int32_t best = draw(l, g, 0);
    SamplingParams k1;
    k1.top_k = 1;
    SamplingParams eps;
    eps.temperature = 1e-6;
    CHECK(draw(l, k1, trial) == best);
    CHECK(draw(l, eps, trial) == best);
    std::vector<float> gap = l;
    gap[static_cast<size_t>(trial % 64)] += 50.0f;
    SamplingParams cold;
    cold.temperature = 0.01;
    CHECK(draw(gap, cold, static_cast<uint64_t>(trial)) == trial % 64);
  }
}

TEST_CASE("top-p keeps exactly the nucleus, min-p keeps the tokens near the top", "[sampling]") {
  const auto l = log_probs({0.05, 0.5, 0.15, 0.3});  // order by probability: 1, 3, 2, 0
  SamplingParams p;
  p.top_p = 0.75;  // 0.5 < 0.75 <= 0.5 + 0.3
  auto h = histogram(l, p, 4000);
  CHECK(h.size() == 2);
  CHECK(h.count(1) == 1);
  CHECK(h.count(3) == 1);
  CHECK(std::abs(h[1] / 4000.0 - 0.5 / 0.8) < 0.03);
  p.top_p = 0.85;
  CHECK(histogram(l, p, 4000).size() == 3);
  p.top_p = 0.4;  // the top token alone already covers it
  CHECK(histogram(l, p, 500) == std::map<int32_t, int>{{1, 500}});

  SamplingParams mp;
  mp.min_p = 0.35;  // keep p >= 0.35 * 0.5 = 0.175: tokens 1 and 3
  h = histogram(l, mp, 4000);
  CHECK(h.size() == 2);
  CHECK(h.count(2) == 0);
  mp.min_p = 0.25;  // 0.125: token 2 (0.15) comes back
  CHECK(histogram(l, mp, 4000).size() == 3);

  SamplingParams tk;
  tk.top_k = 2;
  h = histogram(l, tk, 4000);
  CHECK(h.size() == 2);
  CHECK(std::abs(h[3] / 4000.0 - 0.3 / 0.8) < 0.03);
}

TEST_CASE("penalties follow vLLM on hand values", "[sampling]") {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f, 1.0f};
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.25;
  const std::vector<int32_t> prompt = {0, 0, 4};
  const std::vector<int32_t> output = {1, 3, 3, 4};
  const int32_t t = sample_token(l, p, prompt, output, {}, 0);
  // Repetition on prompt or output tokens (divide positive, multiply negative), then
  // frequency * count + presence on output tokens.
  CHECK(l[0] == Approx(1.0f));
  CHECK(l[1] == Approx(-2.0f - 0.5f - 0.25f));
  CHECK(l[2] == Approx(0.5f));
  CHECK(l[3] == Approx(1.5f - 1.0f - 0.25f));
  CHECK(l[4] == Approx(0.5f - 0.5f - 0.25f));
  CHECK(t == 0);
  // Scratch is left clean: a second call without penalties sees the raw logits.
  std::vector<float> raw = {2.0f, -1.0f, 0.5f, 3.0f, 1.0f};
  SamplingParams only_freq;
  only_freq.temperature = 0;
  only_freq.frequency_penalty = 2.0;
  CHECK(sample_token(raw, only_freq, {}, std::vector<int32_t>{0}, {}, 0) == 3);
  CHECK(raw[0] == Approx(0.0f));
  CHECK(raw[3] == Approx(3.0f));
}

TEST_CASE("min_tokens masks eos and stop ids until reached", "[sampling]") {
  const std::vector<float> l = {0.0f, 1.0f, 9.0f, 8.0f};
  SamplingParams p;
  p.temperature = 0;
  p.min_tokens = 2;
  p.stop_token_ids = {3};
  const std::vector<int64_t> eos = {2};
  CHECK(draw(l, p, 0, {}, eos) == 1);
  CHECK(draw(l, p, 0, {5}, eos) == 1);
  CHECK(draw(l, p, 0, {5, 6}, eos) == 2);
  p.ignore_eos = true;  // as vLLM: eos is no stop token then, so min_tokens leaves it alone
  CHECK(draw(l, p, 0, {}, eos) == 2);
  SamplingParams s;
  s.min_tokens = 3;
  s.stop_token_ids = {3};
  for (int i = 0; i < 200; ++i) CHECK(draw(l, s, static_cast<uint64_t>(i), {}, eos) < 2);
}

TEST_CASE("sampling keys are reproducible and draws follow softmax", "[sampling]") {
  SamplingParams seeded;
  seeded.seed = 42;
  CHECK(sampling_key(seeded, 1, 7, 3) == sampling_key(seeded, 99, 8, 3));
  CHECK(sampling_key(seeded, 1, 7, 3) != sampling_key(seeded, 1, 7, 4));
  SamplingParams unseeded;
  CHECK(sampling_key(unseeded, 1, 7, 3) != sampling_key(unseeded, 1, 8, 3));
  CHECK(sampling_key(unseeded, 1, 7, 3) == sampling_key(unseeded, 1, 7, 3));

  const std::vector<float> l = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f, -3.0f, 0.2f};
  for (uint64_t k : {1ull, 77ull, 123456789ull}) CHECK(draw(l, SamplingParams{}, k) == draw(l, SamplingParams{}, k));

  for (double temp : {1.0, 0.7}) {
    SamplingParams p;
    p.temperature = temp;
    const int n = 20000;
    auto h = histogram(l, p, n);
    double z = 0;
    for (float x : l) z += std::exp(x / temp);
    for (size_t i = 0; i < l.size(); ++i) {
      const double expect = std::exp(l[i] / temp) / z;
      INFO("temperature " << temp << " token " << i);
      CHECK(std::abs(h[static_cast<int32_t>(i)] / double(n) - expect) < 0.012);
    }
  }
}

TEST_CASE("sampler equals the plain algorithm, sorted or in id order", "[sampling]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 2);
  std::vector<float> l(50000);
  for (float& x : l) x = nd(rng);
  for (auto [top_p, min_p, temp] : {std::tuple{1.0, 0.0, 1.0}, std::tuple{0.9, 0.0, 1.0},
                                    std::tuple{0.5, 0.05, 0.8}, std::tuple{1.0, 0.02, 1.3}}) {
    SamplingParams p;
    p.top_p = top_p;
    p.min_p = min_p;
    p.temperature = temp;
    std::set<int32_t> distinct;
    for (uint64_t k = 0; k < 300; ++k) {
      const uint64_t key = sampling_key(p, 5, 1, static_cast<int32_t>(k));
      const int32_t got = draw(l, p, key);
      CHECK(got == reference_draw(l, p, key));
      distinct.insert(got);
    }
    CHECK(distinct.size() > 20);
  }
}

TEST_CASE("untruncated draws walk the kept tokens in ascending id order", "[sampling]") {
  // q = p / max = {0.4, 1, 0.6}, mass 2: id order puts the boundaries at u = 0.2 and 0.7.
  const auto l = log_probs({0.2, 0.5, 0.3});
  int seen[3] = {};
  for (uint64_t key = 0; key < 2000; ++key) {
    const double u = unit(key);
    auto near = [u](double b) { return std::abs(u - b) < 1e-6; };
    if (near(0.2) || near(0.7) || near(0.5) || near(0.8) || near(0.625)) continue;
    INFO("key " << key << " u " << u);
    const int32_t want = u < 0.2 ? 0 : u < 0.7 ? 1 : 2;
    ++seen[want];
    // top_k disabled in every spelling: -1, 0, or at least the vocab size.
    for (int32_t k : {-1, 0, 3, 7}) {
      SamplingParams p;
      p.top_k = k;
      CHECK(draw(l, p, key) == want);
    }
    // min_p 0.5 keeps q >= 0.5 (ids 1 and 2, mass 1.6): boundary at u = 1 / 1.6.
    SamplingParams mp;
    mp.min_p = 0.5;
    CHECK(draw(l, mp, key) == (u < 0.625 ? 1 : 2));
    // Any rank truncation keeps the descending order (1, 2, 0), even when it keeps everything.
    SamplingParams tp;
    tp.top_p = 0.999999;
    CHECK(draw(l, tp, key) == (u < 0.5 ? 1 : u < 0.8 ? 2 : 0));
    SamplingParams tk;
    tk.top_k = 2;  // ids 1 and 2 by rank, mass 1.6
    CHECK(draw(l, tk, key) == (u < 0.625 ? 1 : 2));
  }
  CHECK(seen[0] > 300);
  CHECK(seen[1] > 900);
  CHECK(seen[2] > 500);
}

TEST_CASE("untruncated draw frequencies match the probabilities (chi-square)", "[sampling]") {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0, 1.5f);
  for (int v : {16, 200}) {
    std::vector<float> l(static_cast<size_t>(v));
    for (float& x : l) x = nd(rng);
    for (double min_p : {0.0, 0.1}) {
      SamplingParams p;
      p.min_p = min_p;
      const float mx = *std::max_element(l.begin(), l.end());
      std::vector<double> expect(l.size());
      double z = 0;
      for (size_t i = 0; i < l.size(); ++i) {
        const double q = std::exp(static_cast<double>(l[i] - mx));
        expect[i] = q >= min_p ? q : 0.0;
        z += expect[i];
      }
      const int n = 60000;
      std::vector<int> h(l.size(), 0);
      for (int i = 0; i < n; ++i) ++h[static_cast<size_t>(draw(l, p, sampling_key(p, 99, 3, i)))];
      double chi2 = 0;
      int df = -1;
      for (size_t i = 0; i < l.size(); ++i) {
        if (expect[i] == 0) {
          CHECK(h[i] == 0);  // dropped by min-p: never drawn
          continue;
        }
        const double e = n * expect[i] / z;
        chi2 += (h[i] - e) * (h[i] - e) / e;
        ++df;
      }
      // Bound: mean df, sd sqrt(2 df); df + 6 sd + 10 is far in the tail (p < 1e-6) for a
      // correct sampler, while a wrong distribution over 60000 draws lands far above it.
      INFO("vocab " << v << " min_p " << min_p << " chi2 " << chi2 << " df " << df);
      CHECK(df > 3);
      CHECK(chi2 < df + 6 * std::sqrt(2.0 * df) + 10);
    }
  }
}
