// step_cost runs once per simulated engine step (~300k times per trace replay): it must stay
// allocation-free and O(#seqs) on the fast path.
#include <benchmark/benchmark.h>

#include "core/model_spec.h"
#include "sim/cost_model.h"
#include "sim/hardware.h"

namespace {

twinfer::StepPlan decode_batch(int n) {
  twinfer::StepPlan p;
  for (int i = 0; i < n; ++i) {
    twinfer::ScheduledSeq s;
    s.id = i;
    s.num_new_tokens = 1;
    s.context_before = 200 + 37 * i;  // spread of KV lengths
    s.samples = true;
    p.seqs.push_back(s);
  }
  p.num_decode_tokens = n;
  return p;
}

twinfer::CostModel llama3_h100(int tp, bool eager) {
  return twinfer::CostModel(*twinfer::model_preset("llama-3-8b"),
                            *twinfer::hardware_preset("h100-sxm"), {}, twinfer::DType::bf16,
                            twinfer::DType::bf16, tp, eager);
}

}  // namespace

static void BM_StepCostDecode64(benchmark::State& state) {
  twinfer::CostModel cm = llama3_h100(static_cast<int>(state.range(0)), false);
  twinfer::StepPlan plan = decode_batch(64);
  for (auto _ : state) benchmark::DoNotOptimize(cm.step_cost(plan).total_s);
  state.counters["step_ms"] = cm.step_cost(plan).total_s * 1e3;
}
BENCHMARK(BM_StepCostDecode64)->Arg(1)->Arg(2);

static void BM_StepCostDecode64Breakdown(benchmark::State& state) {
  twinfer::CostModel cm = llama3_h100(1, true);
  twinfer::StepPlan plan = decode_batch(64);
  for (auto _ : state) benchmark::DoNotOptimize(cm.step_cost(plan, true).ops.size());
}
BENCHMARK(BM_StepCostDecode64Breakdown);
