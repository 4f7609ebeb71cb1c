// vLLM-compatible sampling (core/sampling.h). Per call the work is a few passes over the vocab
// with thread_local scratch (no allocation once it has grown to the vocab size). Without top-k
// or top-p the draw walks the kept tokens in id order (no sort); with them, a sort of only the
// head of the distribution that the draw can reach, sized by a histogram of magnitudes.
#include "core/sampling.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The GPU sampler (kernels/sampler.cu) reproduces these probabilities and sums bit for bit, which
// holds only if every a * b + c below rounds twice, as written: no fused multiply-add.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace twinfer {

namespace {

std::string num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// splitmix64's output function (Steele, Lea, Flood 2014): add the golden-ratio increment, then
// two xor-shift-multiply rounds. Bijective, so distinct inputs never collide.
uint64_t mix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Probabilities are summed in fixed point, q * 2^44 truncated: integer sums are exact and do not
// depend on the order (a GPU reduces them in parallel to the same value). Below 2^20 tokens of q <= 1
// cannot overflow 64 bits; a token below 2^-44 of the top one adds nothing (and is never drawn).
constexpr int kFixedBits = 44;
uint64_t fixed_mass(float q) { return static_cast<uint64_t>(q * 0x1p44f); }

// floor(u * mass) for the draw's u = r53 / 2^53, r53 = the top 53 bits of mix64(key): exact, so
// the inverse-CDF target is the same integer on every machine.
uint64_t draw_target(uint64_t key, uint64_t mass) {
  const unsigned __int128 prod = static_cast<unsigned __int128>(mix64(key) >> 11) * mass;
  return static_cast<uint64_t>(prod >> 53);
}

// Argmax with the lowest id on ties; NaN never wins. All -inf (or NaN) gives id 0.
int32_t argmax(std::span<const float> l) {
  int32_t best = 0;
  float bv = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < l.size(); ++i)
    if (l[i] > bv) {
      bv = l[i];
      best = static_cast<int32_t>(i);
    }
  return best;
}

// Sort key: ascending keys are descending probability, then ascending id. Probabilities are
// non-negative floats, whose bit patterns order like their values.
uint64_t order_key(float p, int32_t id) {
  uint32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  return (static_cast<uint64_t>(~bits) << 32) | static_cast<uint32_t>(id);
}
float key_prob(uint64_t k) {
  const uint32_t bits = ~static_cast<uint32_t>(k >> 32);
  float p;
  std::memcpy(&p, &bits, sizeof p);
  return p;
}
int32_t key_id(uint64_t k) { return static_cast<int32_t>(static_cast<uint32_t>(k)); }

void apply_penalties(std::span<float> logits, const SamplingParams& p,
                     std::span<const int32_t> prompt, std::span<const int32_t> output) {
  thread_local std::vector<int32_t> counts;  // [vocab] output counts, all zero between calls
  thread_local std::vector<uint8_t> done;    // [vocab] penalised already in this call
  const size_t v = logits.size();
  if (counts.size() < v) counts.resize(v, 0);
  if (done.size() < v) done.resize(v, 0);
  auto valid = [v](int32_t t) { return t >= 0 && static_cast<size_t>(t) < v; };
  for (int32_t t : output)
    if (valid(t)) ++counts[t];
  const auto rep = static_cast<float>(p.repetition_penalty);
  const auto freq = static_cast<float>(p.frequency_penalty);
  const auto pres = static_cast<float>(p.presence_penalty);
  auto apply = [&](int32_t t) {
    if (!valid(t) || done[t]) return;
    done[t] = 1;
    float& l = logits[t];
    // Repetition covers prompt and output; frequency/presence only output occurrences.
    if (rep != 1.0f) l = l > 0 ? l / rep : l * rep;
    const int32_t c = counts[t];
    l -= freq * static_cast<float>(c) + (c > 0 ? pres : 0.0f);
  };
  for (int32_t t : prompt) apply(t);
  for (int32_t t : output) apply(t);
  for (auto seq : {prompt, output})
    for (int32_t t : seq)
      if (valid(t)) done[t] = 0, counts[t] = 0;
}

}  // namespace

float sampling_exp(float d) {
  // 2^r on [-1, 0], degree 8, Chebyshev-interpolated: relative error 2.2e-12, so the float
  // result is the correctly rounded exp(d) but in rare near-halfway cases. p(0) == 1 exactly.
  static constexpr double kPoly[9] = {
      0x1.0000000000000p+0,  0x1.62e42feed86dep-1, 0x1.ebfbdfa352278p-3,
      0x1.c6b07fc4ca478p-5,  0x1.3b299bd2457b9p-7, 0x1.5d6e2709043e0p-10,
      0x1.41a41ab23f9bap-13, 0x1.e90e56570acb3p-17, 0x1.f733994251afap-21};
  if (!(d > -104.0f)) return 0.0f;  // NaN, -inf, and e^d < 2^-150, which rounds to zero
  if (d >= 0.0f) return 1.0f;
  const double t = static_cast<double>(d) * 0x1.71547652b82fep+0;  // d * log2(e), in (-150.1, 0)
  const int k = static_cast<int>(t);                                 // toward zero: [-150, 0]
  const double r = t - static_cast<double>(k);                       // (-1, 0], exact
  double poly = kPoly[8];
  for (int j = 7; j >= 0; --j) poly = poly * r + kPoly[j];
  // 2^k is a normal double for k >= -150, so the scaling is exact; the cast rounds once.
  const double scale = std::bit_cast<double>(static_cast<uint64_t>(1023 + k) << 52);
  return static_cast<float>(poly * scale);
}

std::optional<std::string> validate_sampling(const SamplingParams& p, int64_t vocab_size) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature))
    return "temperature must be non-negative, got " + num(p.temperature);
  if (!(p.top_p > 0 && p.top_p <= 1)) return "top_p must be in (0, 1], got " + num(p.top_p);
  if (p.top_k < -1)
    return "top_k must be -1 or 0 (disable), or at least 1, got " + std::to_string(p.top_k);
  if (!(p.min_p >= 0 && p.min_p <= 1)) return "min_p must be in [0, 1], got " + num(p.min_p);
  if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2))
    return "presence_penalty must be in [-2, 2], got " + num(p.presence_penalty);
  if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2))
    return "frequency_penalty must be in [-2, 2], got " + num(p.frequency_penalty);
  if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty))
    return "repetition_penalty must be greater than zero, got " + num(p.repetition_penalty);
  if (p.max_tokens < 1) return "max_tokens must be at least 1, got " + std::to_string(p.max_tokens);
  if (p.min_tokens < 0)
    return "min_tokens must be greater than or equal to 0, got " + std::to_string(p.min_tokens);
  if (p.min_tokens > p.max_tokens)
    return "min_tokens must be less than or equal to max_tokens=" + std::to_string(p.max_tokens) +
           ", got " + std::to_string(p.min_tokens);
  if (vocab_size > 0)
    for (int32_t id : p.stop_token_ids)
      if (id < 0 || id >= vocab_size)
        return "stop_token_ids must be in [0, " + std::to_string(vocab_size) + "), got " +
               std::to_string(id);
  return std::nullopt;
}

uint64_t sampling_key(const SamplingParams& p, uint64_t run_seed, RequestId id, int32_t pos) {
  const uint64_t base = p.seed != -1 ? static_cast<uint64_t>(p.seed)
                                     : run_seed ^ static_cast<uint64_t>(id);
  return mix64(mix64(base) + static_cast<uint64_t>(static_cast<uint32_t>(pos)));
}

int32_t sample_token(std::span<float> logits, const SamplingParams& p,
                     std::span<const int32_t> prompt, std::span<const int32_t> output,
                     std::span<const int64_t> eos_ids, uint64_t key) {
  const size_t v = logits.size();
  if (v == 0) return -1;
  if (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
    apply_penalties(logits, p, prompt, output);
  if (static_cast<int64_t>(output.size()) < p.min_tokens) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    if (!p.ignore_eos)
      for (int64_t e : eos_ids)
        if (e >= 0 && static_cast<size_t>(e) < v) logits[e] = kNegInf;
    for (int32_t s : p.stop_token_ids)
      if (s >= 0 && static_cast<size_t>(s) < v) logits[s] = kNegInf;
  }
  // vLLM treats temperatures below 1e-5 as greedy; top-k 1 is greedy by definition.
  if (p.temperature < 1e-5 || p.top_k == 1) return argmax(logits);

  if (p.temperature != 1.0) {
    const auto t = static_cast<float>(p.temperature);
    for (float& l : logits) l /= t;
  }
  const int32_t top = argmax(logits);
  const float m = logits[top];
  // Everything masked, or a +inf logit, which takes all the mass.
  if (!(m > -std::numeric_limits<float>::infinity()) || m == std::numeric_limits<float>::infinity())
    return top;

  // Unnormalised probabilities exp(l - max) by sampling_exp: the top token has exactly 1.
  thread_local std::vector<float> prob;  // [vocab]
  thread_local std::vector<uint64_t> keys;  // [vocab] order keys of the candidates
  if (prob.size() < v) prob.resize(v);
  if (keys.size() < v) keys.resize(v);
  const auto thr = static_cast<float>(p.min_p);  // min-p: keep p >= min_p * max = min_p
  const bool use_top_k = p.top_k > 1 && static_cast<size_t>(p.top_k) < v;
  const bool use_top_p = p.top_p < 1.0;

  if (!use_top_k && !use_top_p) {
    // Nothing truncates by rank: the kept set is every token with p >= min_p, and the
    // inverse-CDF walk goes over it in ascending id order, so no sort. keys[i] holds token i's
    // fixed-point mass (0 when dropped by min-p). The top token (p = 1 >= min_p) makes the
    // mass positive, so target < mass and the walk always ends on a kept token with f > 0.
    uint64_t mass = 0;
    for (size_t i = 0; i < v; ++i) {
      const float l = logits[i];
      const float q = l == l ? sampling_exp(l - m) : 0.0f;
      const uint64_t f = q >= thr ? fixed_mass(q) : 0;
      keys[i] = f;
      mass += f;
    }
    const uint64_t target = draw_target(key, mass);
    uint64_t cum = 0;
    for (size_t i = 0; i < v; ++i) {
      cum += keys[i];
      if (cum > target) return static_cast<int32_t>(i);
    }
    return top;  // unreachable: cum ends at mass > target
  }

  // Rank-truncated (top-k or top-p): the walk goes over the head in descending probability.
  // Probability mass and count per binary order of magnitude (bucket b holds p in
  // [2^-b, 2^-(b-1)), b = 127 for subnormals and zero), so the sorted head can be sized in one
  // pass. Only the head's size depends on them; the token depends on the exact sums below.
  double bucket_mass[128] = {};
  uint32_t bucket_count[128] = {};
  uint64_t total = 0;  // fixed point (fixed_mass), exact
  for (size_t i = 0; i < v; ++i) {
    const float l = logits[i];
    const float q = l == l ? sampling_exp(l - m) : 0.0f;
    prob[i] = q;
    const uint64_t f = fixed_mass(q);
    total += f;
    uint32_t bits;
    std::memcpy(&bits, &q, sizeof bits);
    const uint32_t b = 127 - std::min<uint32_t>(bits >> 23, 127);
    bucket_mass[b] += q;
    ++bucket_count[b];
  }
  // Walks keys[0, n) (sorted, descending probability): top-p nucleus against `norm`, then
  // min-p, then the inverse-CDF draw. Returns -1 when the walk needs tokens beyond n.
  auto walk = [&](size_t n, uint64_t norm, bool complete) -> int32_t {
    size_t end = n;
    if (use_top_p) {
      const double need = p.top_p * static_cast<double>(norm);
      uint64_t cum = 0;
      size_t r = 0;
      while (r < n && static_cast<double>(cum) < need) cum += fixed_mass(key_prob(keys[r++]));
      if (static_cast<double>(cum) < need && !complete) return -1;
      end = r;
    }
    size_t kept = 0;
    while (kept < end && key_prob(keys[kept]) >= thr) ++kept;
    uint64_t mass = 0;
    for (size_t r = 0; r < kept; ++r) mass += fixed_mass(key_prob(keys[r]));
    const uint64_t target = draw_target(key, mass);
    uint64_t cum = 0;
    for (size_t r = 0; r < kept; ++r) {
      cum += fixed_mass(key_prob(keys[r]));
      if (cum > target) return key_id(keys[r]);
    }
    return complete ? key_id(keys[kept > 0 ? kept - 1 : 0]) : -1;
  };

  // Sorts the tokens with p >= tau (and p > 0) into keys; returns their number.
  auto collect = [&](float tau) {
    size_t n = 0;
    for (size_t i = 0; i < v; ++i)
      if (prob[i] >= tau && prob[i] > 0) keys[n++] = order_key(prob[i], static_cast<int32_t>(i));
    return n;
  };
  auto sort_head = [&](size_t n, size_t k) {
    auto first = keys.begin(), kth = first + static_cast<ptrdiff_t>(k);
    if (k < n) std::nth_element(first, kth, first + static_cast<ptrdiff_t>(n));
    std::sort(first, kth);
  };
  // Smallest bucket depth whose head (p >= 2^-b) satisfies `enough`.
  auto head_tau = [&](auto enough) {
    double mass = 0;
    uint64_t count = 0;
    for (int b = 0; b < 126; ++b) {
      mass += bucket_mass[b];
      count += bucket_count[b];
      if (enough(mass, count)) return std::ldexp(1.0f, -b);
    }
    return 0.0f;
  };

  if (use_top_k) {
    const auto k = static_cast<size_t>(p.top_k);
    const size_t n = collect(head_tau([&](double, uint64_t c) { return c >= k; }));
    const size_t kk = std::min(k, n);
    sort_head(n, kk);
    uint64_t top_total = 0;
    for (size_t r = 0; r < kk; ++r) top_total += fixed_mass(key_prob(keys[r]));
    return walk(kk, top_total, true);
  }

  // Top-p: the head must hold the nucleus; the slack absorbs the rounding of the bucket sums,
  // and a walk that still falls short retries with every token. The token does not depend on
  // the head's size: walks over any sorted prefix agree.
  const double need = p.top_p * static_cast<double>(total) * std::ldexp(1.0, -kFixedBits) * (1 + 1e-6);
  const float floor_tau = std::max(thr, std::numeric_limits<float>::denorm_min());
  const float tau = std::max(head_tau([&](double mass, uint64_t) { return mass > need; }), floor_tau);
  size_t n = collect(tau);
  sort_head(n, n);
  int32_t id = walk(n, total, tau == floor_tau);
  if (id >= 0) return id;
  n = collect(floor_tau);
  sort_head(n, n);
  id = walk(n, total, true);
  if (id >= 0) return id;
  return top;  // unreachable: the last round is complete
}

}  // namespace twinfer
