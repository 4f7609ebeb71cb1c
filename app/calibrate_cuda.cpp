// `twinfer calibrate`'s measurements on the GPU: synthetic StepPlans (random token ids, block
// tables from a bump allocator over the whole pool) executed directly on a CudaExecutor; wall
// time per step from a graph-capturing executor, per-op device time from an op-profiled one.
#ifdef TWINFER_HAVE_CUDA
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "app/backend_cuda.h"
#include "app/calibrate_measure.h"
#include "core/error.h"

namespace twinfer {

namespace {

// One synthetic step: owns the token ids, block tables and sampling parameters its plan points
// into, so it is built in place and never moved once the plan exists.
struct SyntheticStep {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<BlockId>> tables;
  SamplingParams sampling;
  StepPlan plan;
  SyntheticStep() = default;
  SyntheticStep(const SyntheticStep&) = delete;
  SyntheticStep& operator=(const SyntheticStep&) = delete;
};

// Fills `st` for `p`: sequence i gets its own consecutive blocks (no sharing, so attention reads
// as many distinct KV bytes as the cost model charges). "" when it fits, else why not.
std::string build_step(const CalibPoint& p, const cuda::CudaExecutorOptions& o, int32_t num_blocks,
                       int64_t vocab, std::mt19937_64& rng, SyntheticStep& st) {
  const int32_t bs = o.block_size;
  int64_t blocks = 0, decodes = 0;
  for (const SeqShape& q : p.seqs) {
    blocks += (static_cast<int64_t>(q.context_before) + q.num_new_tokens + bs - 1) / bs;
    decodes += q.num_new_tokens == 1;
    if (q.context_before + q.num_new_tokens > o.max_model_len)
      return "context " + std::to_string(q.context_before + q.num_new_tokens) +
             " exceeds --max-model-len " + std::to_string(o.max_model_len);
  }
  if (blocks > num_blocks)
    return "needs " + std::to_string(blocks) + " KV blocks, the pool has " + std::to_string(num_blocks);
  if (p.tokens() > std::max(o.max_num_batched_tokens, o.max_num_seqs))
    return std::to_string(p.tokens()) + " tokens exceed the step budget " +
           std::to_string(o.max_num_batched_tokens);
  if (static_cast<int64_t>(p.seqs.size()) > o.max_num_seqs)
    return std::to_string(p.seqs.size()) + " sequences exceed max_num_seqs " + std::to_string(o.max_num_seqs);

  st.sampling = SamplingParams{};
  st.sampling.temperature = 0;  // greedy: finite whatever the (uninitialised) cache holds
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  st.tokens.resize(p.seqs.size());
  st.tables.resize(p.seqs.size());
  BlockId next = 0;
  for (size_t i = 0; i < p.seqs.size(); ++i) {
    const SeqShape& q = p.seqs[i];
    const int32_t ctx = q.context_before + q.num_new_tokens;
    st.tokens[i].resize(static_cast<size_t>(ctx));
    for (int32_t& t : st.tokens[i]) t = tok(rng);
    st.tables[i].resize(static_cast<size_t>((ctx + bs - 1) / bs));
    for (BlockId& b : st.tables[i]) b = next++;
  }
  st.plan = shape_plan(p.seqs, bs);
  for (size_t i = 0; i < p.seqs.size(); ++i) {
    ScheduledSeq& s = st.plan.seqs[i];
    s.tokens = &st.tokens[i];
    s.block_table = std::span<const BlockId>(st.tables[i]);
    s.sampling = &st.sampling;
    s.generated = 0;
  }
  return "";
}

void execute_checked(cuda::CudaExecutor& ex, const StepPlan& plan, const std::string& label) {
  const StepResult r = ex.execute(plan);
  if (!r.failed.empty())
    throw ConfigError("calibrate: step '" + label + "' failed on the device: request " +
                      std::to_string(r.failed.front().first) + ": " + r.failed.front().second, 1);
}

// Executor op -> cost-model op (sim/cost_model.cpp names). RoPE and the KV write are folded
// into qkv_proj by the model; the upload of index arrays is host overhead, not an op.
const char* model_op(cuda::Op op) {
  using cuda::Op;
  switch (op) {
    case Op::embed: return "embedding";
    case Op::norm: return "norm";
    case Op::qkv: case Op::rope_kv: return "qkv_proj";
    case Op::attn_decode: return "attn_decode";
    case Op::attn_prefill: return "attn_prefill";
    case Op::o_proj: return "o_proj";
    case Op::gate_up: return "gate_up_proj";
    case Op::act: return "activation";
    case Op::down: return "down_proj";
    case Op::lm_head: return "lm_head";
    case Op::sample: return "sampling";
    default: return nullptr;
  }
}

}  // namespace

CalibRun measure_cuda(const RunConfig& cfg, const ModelSpec& model,
                      const std::vector<CalibPoint>& points, const CalibRunOptions& opt) {
  if (opt.repeats < 1 || opt.warmup < 0)
    throw ConfigError("calibrate: --repeats must be >= 1 and warm-up >= 0", 2);
  std::string why;
  if (!cuda::device_available(&why)) throw ConfigError("calibrate --backend cuda: " + why, 1);
  CalibRun run;
  cudaDeviceProp prop{};
  int dev = 0;
  TWINFER_CUDA_CHECK(cudaGetDevice(&dev));
  TWINFER_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  run.gpu_name = prop.name;

  std::vector<size_t> kept;  // indices into points that ran
  {
    MemoryPlan plan;
    std::unique_ptr<cuda::CudaExecutor> ex = make_cuda_executor(cfg, model, plan, false);
    run.pool_tokens = plan.capacity_tokens;
    std::mt19937_64 rng(cfg.seed ^ 0x9e3779b97f4a7c15ull);
    std::vector<double> t(static_cast<size_t>(opt.repeats));
    for (size_t pi = 0; pi < points.size(); ++pi) {
      const CalibPoint& p = points[pi];
      SyntheticStep st;
      const std::string why = build_step(p, ex->options(), plan.num_gpu_blocks, model.vocab_size, rng, st);
      if (!why.empty()) {
        run.skipped.push_back(p.label + ": " + why);
        continue;
      }
      for (int i = 0; i < opt.warmup; ++i) execute_checked(*ex, st.plan, p.label);
      const int64_t graphs_before = ex->stats().graph_steps;
      for (double& x : t) {
        const auto t0 = std::chrono::steady_clock::now();
        execute_checked(*ex, st.plan, p.label);
        x = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      std::sort(t.begin(), t.end());
      CalibMeasurement m;
      m.point = p;
      m.eager = ex->stats().graph_steps == graphs_before;
      m.wall_s = t[t.size() / 2];
      run.measurements.push_back(std::move(m));
      kept.push_back(pi);
      std::fprintf(stderr, "  %-34s %9.3f ms (%s)\n", p.label.c_str(), run.measurements.back().wall_s * 1e3,
                   run.measurements.back().eager ? "eager" : "graph");
    }
  }  // frees the first executor's weights and pool before the second loads

  if (opt.op_profile && !kept.empty()) {
    std::fprintf(stderr, "calibrate: op-profiled pass (events between ops, no graphs)\n");
    MemoryPlan plan;
    std::unique_ptr<cuda::CudaExecutor> ex = make_cuda_executor(cfg, model, plan, true);
    std::mt19937_64 rng(cfg.seed ^ 0x7f4a7c159e3779b9ull);
    for (size_t k = 0; k < kept.size(); ++k) {
      const CalibPoint& p = points[kept[k]];
      SyntheticStep st;
      if (!build_step(p, ex->options(), plan.num_gpu_blocks, model.vocab_size, rng, st).empty())
        continue;  // the eager pool can differ in size; keep the wall time only
      for (int i = 0; i < opt.warmup; ++i) execute_checked(*ex, st.plan, p.label);
      const cuda::OpProfile before = ex->op_profile();
      for (int i = 0; i < opt.repeats; ++i) execute_checked(*ex, st.plan, p.label);
      const cuda::OpProfile& after = ex->op_profile();
      CalibMeasurement& m = run.measurements[k];
      for (int o = 0; o < static_cast<int>(cuda::Op::count); ++o) {
        const char* name = model_op(static_cast<cuda::Op>(o));
        const double ms = (after.ms[o] - before.ms[o]) / opt.repeats;
        if (!name || !(ms > 0)) continue;
        auto it = std::find_if(m.op_s.begin(), m.op_s.end(), [&](const auto& e) { return e.first == name; });
        if (it == m.op_s.end()) m.op_s.emplace_back(name, ms * 1e-3);
        else it->second += ms * 1e-3;
      }
    }
  }
  return run;
}

}  // namespace twinfer
#endif  // TWINFER_HAVE_CUDA
