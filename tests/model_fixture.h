// Shared by the CPU and CUDA executor tests: the tiny checkpoints with their transformers
// reference (tests/fixtures/tiny_*/reference.json) and a sequence driven by hand, step by step,
// as the engine would drive it.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "core/cpu_executor.h"
#include "core/executor.h"
#include "core/weights.h"
#include "core/json.h"

namespace twinfer::test {

inline std::string fixture(const std::string& name) {
  return std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/" + name;
}

struct Reference {
  std::vector<int32_t> prompt;
  std::vector<std::vector<float>> logits;  // [prompt positions][vocab]
  std::vector<int32_t> greedy;
};

inline Reference load_reference(const std::string& name) {
  Json j = Json::parse_file(fixture(name) + "/reference.json");
  Reference r;
  for (const Json& t : j.get("prompt")->as_array()) r.prompt.push_back(static_cast<int32_t>(t.as_int()));
  for (const Json& row : j.get("prefill_logits")->as_array()) {
    r.logits.emplace_back();
    for (const Json& v : row.as_array()) r.logits.back().push_back(static_cast<float>(v.as_number()));
  }
  for (const Json& t : j.get("greedy_tokens")->as_array())
    r.greedy.push_back(static_cast<int32_t>(t.as_int()));
  return r;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// One sequence as the engine would track it: tokens, block table, progress.
struct Seq {
  RequestId id;
  std::vector<int32_t> tokens;
  std::vector<BlockId> table;
  SamplingParams sp;
  int32_t computed = 0;  // tokens whose KV is cached
  int32_t generated = 0;

  ScheduledSeq step(int32_t n) const {
    ScheduledSeq q;
    q.id = id;
    q.num_new_tokens = n;
    q.context_before = computed;
    q.is_prefill = n > 1 || generated == 0;
    q.samples = computed + n == static_cast<int32_t>(tokens.size());
    q.tokens = &tokens;
    q.block_table = table;
    q.sampling = &sp;
    q.generated = generated;
    return q;
  }
  void commit(int32_t n, int32_t sampled) {
    computed += n;
    if (computed == static_cast<int32_t>(tokens.size()) && sampled >= 0) {
      tokens.push_back(sampled);
      ++generated;
    }
  }
};

inline SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0;
  p.max_tokens = 64;
  return p;
}

// Runs one step of the given (seq, num_new_tokens) pairs on any real executor and commits the
// samples; `plan` may carry copies and swaps to do first.
inline StepResult run_step(Executor& ex, std::vector<std::pair<Seq*, int32_t>> items,
                           int32_t block_size = 4, StepPlan plan = {}) {
  plan.block_size = block_size;
  for (auto& [s, n] : items) plan.seqs.push_back(s->step(n));
  StepResult r = ex.execute(plan);
  size_t k = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const int32_t tok = plan.seqs[i].samples ? r.sampled.at(k++) : -1;
    items[i].first->commit(items[i].second, tok);
  }
  REQUIRE(k == r.sampled.size());
  return r;
}

// Dense CPU-reference logits of the last position of `tokens`.
inline std::vector<float> dense_last(const ModelWeights& w, std::span<const int32_t> tokens) {
  std::vector<float> all = forward_logits(w, tokens);
  return {all.end() - w.spec.vocab_size, all.end()};
}

}  // namespace twinfer::test
