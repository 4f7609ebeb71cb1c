// CPU forward pass against Hugging Face transformers (tests/fixtures/tiny_*/reference.json,
// written by scripts/make_reference_logits.py), and the paged executor against the dense one.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "core/cpu_executor.h"
#include "core/error.h"
#include "core/json.h"
#include "core/sampling.h"
#include "core/weights.h"
#include "tests/model_fixture.h"

using namespace twinfer;
using namespace twinfer::test;
namespace fs = std::filesystem;

namespace {

const char* kFixtures[] = {"tiny_llama", "tiny_qwen2", "tiny_llama3"};

}  // namespace

TEST_CASE("dense forward matches transformers prefill logits", "[cpu]") {
  for (const char* name : kFixtures) {
    INFO(name);
    Reference ref = load_reference(name);
    ModelWeights w = load_model_weights(fixture(name));
    std::vector<float> logits = forward_logits(w, ref.prompt);
    float worst = 0.0f;
    for (size_t t = 0; t < ref.prompt.size(); ++t)
      worst = std::max(worst, max_abs_diff(std::span(logits).subspan(t * 256, 256), ref.logits[t]));
    CHECK(worst < 1e-4f);
  }
}

TEST_CASE("llama3 rope scaling is exercised by its fixture", "[cpu]") {
  Reference ref = load_reference("tiny_llama3");
  ModelWeights w = load_model_weights(fixture("tiny_llama3"));
  CHECK(w.spec.rope_scaling_type == "llama3");
  w.spec.rope_scaling_type.clear();
  w.rope_inv_freq = rope_inv_freq(w.spec);
  std::vector<float> logits = forward_logits(w, ref.prompt);
  CHECK(max_abs_diff(std::span(logits).last(256), ref.logits.back()) > 1e-3f);
}

TEST_CASE("paged executor reproduces greedy tokens and dense logits", "[cpu]") {
  for (const char* name : kFixtures) {
    INFO(name);
    Reference ref = load_reference(name);
    CpuExecutor ex(load_model_weights(fixture(name)), 16, 0, 4, 7);
    CHECK(ex.backend() == "cpu");
    CHECK(ex.real_tokens());
    // Non-contiguous, unordered physical blocks.
    Seq s{1, ref.prompt, {9, 2, 14, 0, 7, 11}, greedy()};
    run_step(ex, {{&s, static_cast<int32_t>(ref.prompt.size())}});
    CHECK(max_abs_diff(ex.last_logits(1), ref.logits.back()) < 1e-4f);
    for (size_t i = 1; i < ref.greedy.size(); ++i) {
      run_step(ex, {{&s, 1}});
      std::vector<int32_t> ctx(s.tokens.begin(), s.tokens.end() - 1);
      CHECK(max_abs_diff(ex.last_logits(1), dense_last(ex.weights(), ctx)) < 1e-5f);
    }
    std::vector<int32_t> out(s.tokens.begin() + static_cast<long>(ref.prompt.size()), s.tokens.end());
    CHECK(out == ref.greedy);
  }
}

TEST_CASE("chunked prefill gives the same logits as one chunk", "[cpu]") {
  Reference ref = load_reference("tiny_qwen2");
  CpuExecutor ex(load_model_weights(fixture("tiny_qwen2")), 16, 0, 4, 7);
  Seq s{3, ref.prompt, {5, 1, 12}, greedy()};
  // Chunks of 5, 4, 3 tokens: cutting across block boundaries; only the last one samples.
  StepResult r = run_step(ex, {{&s, 5}});
  CHECK(r.sampled.empty());
  CHECK(ex.last_logits(3).empty());
  run_step(ex, {{&s, 4}});
  r = run_step(ex, {{&s, 3}});
  REQUIRE(r.sampled.size() == 1);
  CHECK(r.sampled[0] == ref.greedy[0]);
  CHECK(max_abs_diff(ex.last_logits(3), ref.logits.back()) < 1e-4f);
}

TEST_CASE("a batch mixing prefill chunks and decodes matches each sequence alone", "[cpu]") {
  Reference ref = load_reference("tiny_llama");
  CpuExecutor ex(load_model_weights(fixture("tiny_llama")), 32, 0, 4, 7);
  Seq a{10, ref.prompt, {0, 1, 2, 3, 4}, greedy()};
  std::vector<int32_t> pb = {5, 6, 7, 8, 9, 10, 11};
  Seq b{11, pb, {20, 30, 25}, greedy()};
  run_step(ex, {{&a, 12}});
  // a decodes while b prefills in two chunks, all in shared GEMMs.
  run_step(ex, {{&a, 1}, {&b, 4}});
  run_step(ex, {{&a, 1}, {&b, 3}});
  CHECK(max_abs_diff(ex.last_logits(10),
                     dense_last(ex.weights(), std::span(a.tokens).first(a.tokens.size() - 1))) < 1e-5f);
  CHECK(max_abs_diff(ex.last_logits(11), dense_last(ex.weights(), pb)) < 1e-5f);
  run_step(ex, {{&b, 1}, {&a, 1}});
  CHECK(max_abs_diff(ex.last_logits(11),
                     dense_last(ex.weights(), std::span(b.tokens).first(b.tokens.size() - 1))) < 1e-5f);
}

TEST_CASE("copy-on-write and swap move KV blocks intact", "[cpu]") {
  Reference ref = load_reference("tiny_llama");
  CpuExecutor ex(load_model_weights(fixture("tiny_llama")), 16, 8, 4, 7);
  Seq a{1, ref.prompt, {3, 4, 5, 6}, greedy()};
  std::vector<int32_t> p10(ref.prompt.begin(), ref.prompt.begin() + 10);
  Seq half{1, p10, {3, 4, 5}, greedy()};
  run_step(ex, {{&half, 10}});
  // Fork: the child shares blocks 3 and 4 and gets a copy of the partial block 5 in 8.
  Seq child{2, p10, {3, 4, 8}, greedy()};
  child.computed = 10;
  child.tokens.push_back(200);
  StepPlan plan;
  plan.block_size = 4;
  plan.copies = {{5, 8}};
  plan.seqs = {half.step(1), child.step(1)};
  ex.execute(plan);
  auto expect_child = dense_last(ex.weights(), child.tokens);
  CHECK(max_abs_diff(ex.last_logits(2), expect_child) < 1e-5f);
  CHECK(max_abs_diff(ex.last_logits(1), dense_last(ex.weights(), half.tokens)) < 1e-5f);
  child.computed = 11;

  // Swap the child out, clobber its GPU blocks with another sequence, swap it back elsewhere.
  plan = StepPlan{};
  plan.block_size = 4;
  plan.swap_out = {{3, 0}, {4, 1}, {8, 2}};
  ex.execute(plan);
  Seq other{3, std::vector<int32_t>(12, 42), {3, 4, 8}, greedy()};
  run_step(ex, {{&other, 12}});
  plan = StepPlan{};
  plan.block_size = 4;
  plan.swap_in = {{0, 10}, {1, 11}, {2, 12}};
  ex.execute(plan);
  child.table = {10, 11, 12};
  child.tokens.push_back(9);
  run_step(ex, {{&child, 1}});
  CHECK(max_abs_diff(ex.last_logits(2),
                     dense_last(ex.weights(), std::span(child.tokens).first(12))) < 1e-5f);
}

TEST_CASE("a bad request fails alone while the batch goes on", "[cpu]") {
  Reference ref = load_reference("tiny_llama");
  CpuExecutor ex(load_model_weights(fixture("tiny_llama")), 32, 0, 4, 7);
  Seq good{1, ref.prompt, {0, 1, 2}, greedy()};
  Seq bad_tok{2, {1, 2, 999}, {3}, greedy()};
  Seq bad_sp{3, {1, 2, 3}, {4}, greedy()};
  bad_sp.sp.top_p = 1.5;
  Seq bad_table{4, {1, 2, 3, 4, 5}, {5}, greedy()};
  StepResult r = run_step(ex, {{&bad_tok, 3}, {&good, 12}, {&bad_sp, 3}, {&bad_table, 5}});
  REQUIRE(r.failed.size() == 3);
  CHECK(r.failed[0].first == 2);
  CHECK_THAT(r.failed[0].second, Catch::Contains("token id 999"));
  CHECK(r.failed[1].first == 3);
  CHECK_THAT(r.failed[1].second, Catch::Contains("top_p"));
  CHECK(r.failed[2].first == 4);
  CHECK_THAT(r.failed[2].second, Catch::Contains("cannot hold 5 tokens"));
  REQUIRE(r.sampled.size() == 4);
  CHECK(r.sampled == std::vector<int32_t>{-1, ref.greedy[0], -1, -1});
  CHECK(max_abs_diff(ex.last_logits(1), ref.logits.back()) < 1e-4f);
  CHECK(r.duration_s > 0.0);
}

TEST_CASE("make-model writes a loadable random checkpoint", "[cpu]") {
  ModelSpec spec = load_model_weights(fixture("tiny_qwen2")).spec;
  spec.name = "tiny";
  fs::path base = fs::temp_directory_path() / ("twinfer_mm_" + std::to_string(::getpid()));
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    INFO(dtype_name(dt));
    fs::path d = base / std::string(dtype_name(dt));
    write_random_checkpoint(spec, d.string(), 5, dt);
    ModelWeights w = load_model_weights(d.string());
    CHECK(w.spec.vocab_size == spec.vocab_size);
    CHECK(w.spec.qkv_bias);
    CHECK(w.spec.dtype == dt);
    CHECK(w.final_norm == std::vector<float>(64, 1.0f));
    double sum = 0, sq = 0;
    for (float v : w.embed) {
      sum += v;
      sq += double(v) * v;
    }
    const double n = static_cast<double>(w.embed.size());
    CHECK(std::abs(sum / n) < 1e-3);
    CHECK(std::sqrt(sq / n) == Approx(0.02).epsilon(0.05));
    // Same seed, same weights; the paged executor agrees with the dense forward.
    write_random_checkpoint(spec, (d / "again").string(), 5, dt);
    CHECK(load_model_weights((d / "again").string()).layers[1].w_down == w.layers[1].w_down);
    std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
    auto dense = dense_last(w, prompt);
    CpuExecutor ex(std::move(w), 8, 0, 4, 1);
    Seq s{1, prompt, {6, 2}, greedy()};
    run_step(ex, {{&s, 8}});
    CHECK(max_abs_diff(ex.last_logits(1), dense) < 1e-5f);
  }
  fs::remove_all(base);
}
