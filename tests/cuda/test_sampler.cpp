// GpuSampler against the CPU sampler (core/sampling.cpp): the same token for every row, exactly.
// Both sides share the deterministic exp and the exact fixed-point sums, so any mismatch is a bug.
#include <random>
#include <vector>

#include "core/sampling.h"
#include "kernels/sampler.h"
#include "tests/cuda/gpu_test.h"

using twinfer::SamplingParams;
using twinfer::cuda::GpuSampler;
using twinfer::cuda::SampleRow;
using twinfer::test::DevBuf;

namespace {

struct Case {
  SamplingParams p;
  std::vector<int32_t> prompt, output;
  uint64_t key = 0;
};

// Logits of one row. kind 0: LLM-like (a few tokens far above a normal background, so the
// draw's head is small); 1: flat normal (huge nucleus: top-p rows take the full-sort fallback,
// untruncated rows the id-order draw); 2: like 0 with
// -inf, NaN and exact ties sprinkled in.
void fill_row(float* l, int64_t v, int kind, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.0f, kind == 1 ? 1.0f : 2.0f);
  for (int64_t i = 0; i < v; ++i) l[i] = nd(rng);
  if (kind == 1) return;
  std::uniform_int_distribution<int64_t> tok(0, v - 1);
  std::uniform_real_distribution<float> boost(6.0f, 16.0f);
  for (int j = 0; j < 12; ++j) l[tok(rng)] += boost(rng);
  if (kind == 2) {
    l[tok(rng)] = -INFINITY;
    l[tok(rng)] = NAN;
    const int64_t a = tok(rng), b = tok(rng);
    l[b] = l[a];  // an exact tie
  }
}

Case random_case(int64_t v, std::mt19937_64& rng, const std::vector<int64_t>& eos) {
  Case c;
  std::uniform_int_distribution<int> pick(0, 99);
  const double temps[] = {0.0, 0.7, 1.0, 1.3};
  const int top_ks[] = {-1, -1, 0, 1, 50, 2};
  c.p.temperature = temps[pick(rng) % 4];
  c.p.top_k = top_ks[pick(rng) % 6];
  c.p.top_p = pick(rng) < 50 ? 0.9 : 1.0;
  if (pick(rng) < 15) c.p.top_p = 0.5;
  c.p.min_p = pick(rng) < 30 ? 0.05 : 0.0;
  std::uniform_int_distribution<int64_t> tok(0, v - 1);
  if (pick(rng) < 40) {  // penalties over a prompt and an output with repeats
    c.p.repetition_penalty = pick(rng) < 50 ? 1.3 : 0.8;
    c.p.frequency_penalty = pick(rng) < 50 ? 0.5 : -0.3;
    c.p.presence_penalty = pick(rng) < 50 ? 0.25 : 0.0;
    const int np = 1 + pick(rng) * 3, no = pick(rng);
    for (int i = 0; i < np; ++i) c.prompt.push_back(static_cast<int32_t>(tok(rng)));
    for (int i = 0; i < no; ++i) c.output.push_back(i > 0 && pick(rng) < 30 ? c.output[i - 1] : static_cast<int32_t>(tok(rng)));
    if (pick(rng) < 10) c.output.push_back(-5);  // out of range ids are ignored
  } else if (pick(rng) < 20) {
    for (int i = 0; i < 5; ++i) c.output.push_back(static_cast<int32_t>(tok(rng)));
  }
  if (pick(rng) < 25) {  // min_tokens not reached yet: eos and stop ids masked
    c.p.min_tokens = static_cast<int32_t>(c.output.size()) + 1;
    c.p.max_tokens = c.p.min_tokens + 10;
    c.p.stop_token_ids = {static_cast<int32_t>(tok(rng)), static_cast<int32_t>(tok(rng))};
    c.p.ignore_eos = pick(rng) < 20;
  }
  (void)eos;
  c.key = rng();
  return c;
}

// kMixed: random_case as drawn; kGreedy: temperature 0, no penalties; kUntruncated: top_p 1
// and top_k disabled in every spelling (the id-order draw), other parameters as drawn.
enum class Mode { kMixed, kGreedy, kUntruncated };

// Runs `calls` batches of `rows` random rows; returns the number of mismatching rows.
int compare_batches(int64_t v, int rows, int calls, uint64_t seed, Mode mode = Mode::kMixed) {
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> eos = {v - 1, 2};
  GpuSampler sampler(v, rows, eos);
  DevBuf<float> d_logits(static_cast<size_t>(rows) * v);
  std::vector<float> h(static_cast<size_t>(rows) * v);
  int mismatches = 0;
  for (int call = 0; call < calls; ++call) {
    std::vector<Case> cases;
    for (int r = 0; r < rows; ++r) {
      fill_row(h.data() + static_cast<size_t>(r) * v, v, static_cast<int>(rng() % 3), rng);
      cases.push_back(random_case(v, rng, eos));
      SamplingParams& p = cases.back().p;
      if (mode == Mode::kGreedy) {
        p = SamplingParams{};
        p.temperature = 0;
        cases.back().prompt.clear();
      } else if (mode == Mode::kUntruncated) {
        const double temps[] = {0.7, 1.0, 1.0, 1.3};
        const int32_t top_ks[] = {-1, 0, static_cast<int32_t>(v), static_cast<int32_t>(v) + 5};
        p.temperature = temps[rng() % 4];
        p.top_k = top_ks[rng() % 4];
        p.top_p = 1.0;
      }
    }
    d_logits.upload(h);
    std::vector<SampleRow> sr;
    for (const Case& c : cases) sr.push_back(SampleRow{&c.p, c.prompt, c.output, c.key});
    std::vector<int32_t> got(rows, -7);
    sampler.sample(d_logits.p, sr, got, nullptr);
    for (int r = 0; r < rows; ++r) {
      std::vector<float> row(h.begin() + static_cast<ptrdiff_t>(r) * v, h.begin() + static_cast<ptrdiff_t>(r + 1) * v);
      const Case& c = cases[r];
      const int32_t want = twinfer::sample_token(row, c.p, c.prompt, c.output, eos, c.key);
      if (got[r] != want) {
        ++mismatches;
        UNSCOPED_INFO("vocab " << v << " call " << call << " row " << r << ": gpu " << got[r] << " cpu " << want
                      << " (T " << c.p.temperature << " top_k " << c.p.top_k << " top_p " << c.p.top_p
                      << " min_p " << c.p.min_p << " rep " << c.p.repetition_penalty << " min_tokens "
                      << c.p.min_tokens << ")");
      }
    }
  }
  return mismatches;
}

}  // namespace

TEST_CASE("GPU sampler draws the CPU sampler's tokens, vocab 128256", "[gpu][sampler]") {
  TWINFER_REQUIRE_GPU();
  // 24 calls x 64 rows = 1536 random (logits, params, key) combos; exact equality expected.
  CHECK(compare_batches(128256, 64, 24, 1) == 0);
}

TEST_CASE("GPU sampler draws the CPU sampler's tokens, small and odd vocabs", "[gpu][sampler]") {
  TWINFER_REQUIRE_GPU();
  CHECK(compare_batches(100, 200, 15, 2) == 0);   // 3000 combos
  CHECK(compare_batches(4099, 37, 20, 3) == 0);   // odd sizes: 740 combos
  CHECK(compare_batches(100, 1, 50, 4) == 0);     // single-row calls
}

TEST_CASE("GPU sampler id-order draw (top_p 1, no top-k) equals the CPU's", "[gpu][sampler]") {
  TWINFER_REQUIRE_GPU();
  // Flat and peaked rows, min_p 0.05 on ~30%, penalties on ~40%, min_tokens masks on ~25%.
  CHECK(compare_batches(128256, 256, 3, 7, Mode::kUntruncated) == 0);  // 768 rows
  CHECK(compare_batches(4099, 37, 20, 8, Mode::kUntruncated) == 0);    // unaligned rows, tile tails
  CHECK(compare_batches(100, 64, 20, 9, Mode::kUntruncated) == 0);     // below one tile
  CHECK(compare_batches(2048, 5, 20, 10, Mode::kUntruncated) == 0);    // exactly one tile
}

TEST_CASE("GPU sampler argmax-only path matches greedy, ties to the lowest id", "[gpu][sampler]") {
  TWINFER_REQUIRE_GPU();
  CHECK(compare_batches(128256, 256, 2, 5, Mode::kGreedy) == 0);
  CHECK(compare_batches(100, 3, 10, 6, Mode::kGreedy) == 0);
  // Hand rows: ties, all -inf, NaN.
  const int64_t v = 100;
  GpuSampler sampler(v, 3, {});
  std::vector<float> h(3 * v, -1.0f);
  h[7] = h[40] = 5.0f;                                  // tie: 7
  for (int64_t i = v; i < 2 * v; ++i) h[i] = -INFINITY;  // all masked: 0
  h[2 * v + 3] = NAN;
  h[2 * v + 99] = 0.5f;                                 // NaN never wins: 99
  DevBuf<float> d(3 * v);
  d.upload(h);
  SamplingParams g;
  g.temperature = 0;
  std::vector<SampleRow> rows(3, SampleRow{&g, {}, {}, 0});
  std::vector<int32_t> out(3, -7);
  sampler.sample(d.p, rows, out, nullptr);
  CHECK(out == std::vector<int32_t>{7, 0, 99});
}

TEST_CASE("GPU sampler rejects bad sizes with the value", "[gpu][sampler]") {
  TWINFER_REQUIRE_GPU();
  CHECK_THROWS_WITH(GpuSampler(0, 4, {}), Catch::Contains("vocab must be in [1, 1048575], got 0"));
  GpuSampler s(100, 2, {});
  SamplingParams p;
  std::vector<SampleRow> rows(3, SampleRow{&p, {}, {}, 0});
  std::vector<int32_t> out(3);
  DevBuf<float> d(300);
  CHECK_THROWS_WITH(s.sample(d.p, rows, out, nullptr), Catch::Contains("3 rows, max_rows is 2"));
}
