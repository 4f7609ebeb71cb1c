#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "sim/cost_model.h"

using namespace twinfer;

namespace {

ScheduledSeq decode(RequestId id, int32_t context_before) {
  ScheduledSeq s;
  s.id = id;
  s.num_new_tokens = 1;
  s.context_before = context_before;
  s.samples = true;
  return s;
}

ScheduledSeq prefill(RequestId id, int32_t n, int32_t context_before, bool samples) {
  ScheduledSeq s;
  s.id = id;
  s.num_new_tokens = n;
  s.context_before = context_before;
  s.is_prefill = true;
  s.samples = samples;
  return s;
}

StepPlan plan_of(std::vector<ScheduledSeq> seqs) {
  StepPlan p;
  p.seqs = std::move(seqs);
  for (const auto& s : p.seqs) (s.is_prefill ? p.num_prefill_tokens : p.num_decode_tokens) += s.num_new_tokens;
  return p;
}

CostModel make(const char* model = "llama-3-8b", const char* gpu = "h100-sxm", int tp = 1,
               bool eager = false, DType kv = DType::bf16, CostParams params = {}) {
  return CostModel(*model_preset(model), *hardware_preset(gpu), params, DType::bf16, kv, tp,
                   eager);
}

const OpCost& op(const StepCost& c, const std::string& name) {
  auto it = std::find_if(c.ops.begin(), c.ops.end(), [&](const OpCost& o) { return o.op == name; });
  if (it == c.ops.end()) FAIL("no op " << name);
  return *it;
}
bool has_op(const StepCost& c, const std::string& name) {
  return std::any_of(c.ops.begin(), c.ops.end(), [&](const OpCost& o) { return o.op == name; });
}

double roof(double flops, double peak, double bytes, double bw) {
  return std::max(flops / peak, bytes / bw);
}

// llama-3-8b on h100-sxm, bf16, default CostParams.
constexpr double H = 4096, L = 32, Q = 4096, KV = 1024, I = 14336, V = 128256, HD = 128;
const double kPeak = 989.5e12 * 0.70, kAttnPeak = 989.5e12 * 0.45;
const double kBw = 3.35e12 * 0.85, kAttnBw = 3.35e12 * 0.75;

}  // namespace

TEST_CASE("batch-1 decode on h100-sxm matches the hand formula", "[cost]") {
  CostModel cm = make();
  StepPlan p = plan_of({decode(1, 1000)});
  const double T = 1, ctx = 1001;
  // GEMM: weights [K, N] bf16 read once, activations in [T, K] and out [T, N].
  auto g = [&](double K, double N) {
    return roof(2 * T * K * N, kPeak, (K * N + T * K + T * N) * 2, kBw);
  };
  double expect = 0;
  expect += T * H * (2 + 2) / kBw;                                           // embedding
  expect += L * (g(H, Q + 2 * KV) + g(Q, H) + g(H, 2 * I) + g(I, H));        // GEMMs
  expect += L * roof(4 * ctx * 32 * HD, kAttnPeak,                          // decode attention
                     (ctx + 1) * 2 * KV * 2 + 2 * Q * 2, kAttnBw);
  expect += (2 * L + 1) * (4 * T * H * 2 + H * 2) / kBw;                     // norms
  expect += L * 3 * T * I * 2 / kBw;                                         // SiLU * up
  expect += roof(2 * H * V, kPeak, (H * V + H) * 2 + V * 4, kBw);            // lm_head
  expect += V * 4 / kBw + 2e-6;                                              // sampling
  expect += 2e-5 + 3e-5 + 1e-6;  // one graph replay, step and per-seq CPU

  StepCost c = cm.step_cost(p);
  CHECK(c.total_s == Approx(expect).epsilon(1e-9));
  CHECK(c.ops.empty());

  // Dominated by streaming the weights (everything but the embedding table) once.
  const double weights_s = (8'030'261'248.0 - V * H) * 2 / kBw;
  CHECK(c.total_s / weights_s > 1.0);
  CHECK(c.total_s / weights_s < 1.05);
  StepCost b = cm.step_cost(p, true);
  double gemm_s = op(b, "qkv_proj").seconds + op(b, "o_proj").seconds +
                  op(b, "gate_up_proj").seconds + op(b, "down_proj").seconds +
                  op(b, "lm_head").seconds;
  CHECK(gemm_s / b.total_s > 0.95);
}

TEST_CASE("breakdown sums to the total and matches the fast path", "[cost]") {
  CostModel cm = make("qwen2.5-7b", "a100-80g", 2, false);
  StepPlan p = plan_of({decode(1, 50), decode(2, 4000), prefill(3, 300, 100, true),
                        prefill(4, 512, 0, false)});
  p.copies = {{1, 2}};
  p.swap_out = {{3, 4}};
  StepCost fast = cm.step_cost(p);
  StepCost full = cm.step_cost(p, true);
  CHECK(fast.total_s == full.total_s);
  double sum = 0;
  for (const OpCost& o : full.ops) sum += o.seconds;
  CHECK(sum == Approx(full.total_s).epsilon(1e-12));
  CHECK(full.total_s == Approx(full.compute_s + full.overhead_s).epsilon(1e-15));
  for (const char* name : {"embedding", "qkv_proj", "attn_prefill", "attn_decode", "o_proj",
                           "gate_up_proj", "down_proj", "norm", "activation", "allreduce",
                           "lm_head", "logits_gather", "sampling", "swap", "copy_blocks",
                           "launch", "cpu"})
    CHECK(has_op(full, name));
}

TEST_CASE("fp8 KV halves decode attention KV bytes, read at attn_fp8_bw_eff", "[cost]") {
  StepPlan p = plan_of({decode(1, 8000), decode(2, 3000)});
  StepCost bf = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16).step_cost(p, true);
  StepCost f8 = make("llama-3-8b", "h100-sxm", 1, false, DType::fp8_e4m3).step_cost(p, true);
  const double qo = L * 2 * (2 * Q * 2);  // Q read, O written per decode row, bf16
  const double kv_bf = op(bf, "attn_decode").bytes - qo;
  const double kv_f8 = op(f8, "attn_decode").bytes - qo;
  CHECK(kv_bf == Approx(L * (8001 + 3001 + 2) * 2 * KV * 2).epsilon(1e-12));
  CHECK(kv_f8 == Approx(kv_bf / 2).epsilon(1e-12));
  // Half the bytes at attn_fp8_bw_eff instead of attn_bw_eff (the H100 measured fp8 slower).
  const CostParams d;
  CHECK(op(f8, "attn_decode").seconds / op(bf, "attn_decode").seconds ==
        Approx((kv_f8 + qo) / (kv_bf + qo) * d.attn_bw_eff / d.attn_fp8_bw_eff).epsilon(1e-9));
  CHECK(op(f8, "qkv_proj").seconds == op(bf, "qkv_proj").seconds);
  CHECK(f8.total_s - bf.total_s ==
        Approx(op(f8, "attn_decode").seconds - op(bf, "attn_decode").seconds).epsilon(1e-9));
}

TEST_CASE("prefill attention waits for its last query block's chain of key tiles", "[cost]") {
  CostParams c;
  c.attn_prefill_tile_s = 2e-6;
  const CostModel off = make();
  const CostModel on = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, c);
  // 200 new tokens after 100 cached: a context of 300 is ceil(300 / 64) = 5 tiles per layer,
  // combined with the FLOP time in quadrature.
  const StepPlan one = plan_of({prefill(1, 200, 100, true)});
  const double t = op(off.step_cost(one, true), "attn_prefill").seconds / L;
  CHECK(op(on.step_cost(one, true), "attn_prefill").seconds ==
        Approx(L * std::hypot(t, 5 * 2e-6)).epsilon(1e-12));
  // Several prefills and decodes: the mean context of the prefill rows, (300 + 40) / 2 = 170,
  // is 3 tiles; decode rows do not count.
  const StepPlan mixed = plan_of({decode(1, 5000), decode(2, 7000), prefill(3, 200, 100, true),
                                  prefill(4, 40, 0, true)});
  const double tm = op(off.step_cost(mixed, true), "attn_prefill").seconds / L;
  CHECK(op(on.step_cost(mixed, true), "attn_prefill").seconds ==
        Approx(L * std::hypot(tm, 3 * 2e-6)).epsilon(1e-12));
  CHECK(op(on.step_cost(mixed, true), "attn_decode").seconds ==
        op(off.step_cost(mixed, true), "attn_decode").seconds);
  // A long prompt is FLOP-bound: the latency moves it by under 0.5%.
  const StepPlan big = plan_of({prefill(1, 8192, 0, true)});
  CHECK(on.step_cost(big).total_s == Approx(off.step_cost(big).total_s).epsilon(5e-3));
}

TEST_CASE("decode attention follows the actual KV lengths", "[cost]") {
  CostModel cm = make();
  double short_s = op(cm.step_cost(plan_of({decode(1, 100)}), true), "attn_decode").seconds;
  double long_s = op(cm.step_cost(plan_of({decode(1, 10000)}), true), "attn_decode").seconds;
  // Bandwidth bound: K/V of context_after tokens read + 1 written, plus Q in and O out.
  const double kv_tok = 2 * KV * 2, qo = 2 * Q * 2;
  CHECK(long_s / short_s == Approx((10002 * kv_tok + qo) / (102 * kv_tok + qo)).epsilon(1e-12));
}

TEST_CASE("decode attention waits for its longest partition", "[cost]") {
  CostParams p;
  p.attn_part_key_s = 7e-8;
  const CostModel off = make(), on = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p);
  auto attn = [](const CostModel& cm, std::vector<ScheduledSeq> seqs) {
    return op(cm.step_cost(plan_of(std::move(seqs)), true), "attn_decode").seconds;
  };
  auto batch = [](int n, int32_t ctx, int32_t longest) {
    std::vector<ScheduledSeq> v;
    for (int i = 0; i < n; ++i) v.push_back(decode(i, i == 0 ? longest - 1 : ctx - 1));
    return v;
  };
  // Batch 16 runs 512-key partitions: the latency is min(longest context, 512) keys.
  for (int32_t longest : {300, 600, 5000}) {
    INFO("longest " << longest);
    const double stream = attn(off, batch(16, 300, longest));
    const double lat = 7e-8 * std::min(longest, 512);
    CHECK(attn(on, batch(16, 300, longest)) == Approx(L * std::hypot(stream / L, lat)).epsilon(1e-12));
  }
  // Batch 4 runs 64-key partitions.
  const double stream4 = attn(off, batch(4, 300, 900));
  CHECK(attn(on, batch(4, 300, 900)) == Approx(L * std::hypot(stream4 / L, 7e-8 * 64)).epsilon(1e-12));
  // A shape without the longest context (an older step_shapes.csv) uses the mean.
  StepShape sh = StepShape::of(plan_of(batch(16, 300, 300)));
  CHECK(sh.decode_max_context == 300);
  const double with = on.step_cost(sh).total_s;
  sh.decode_max_context = 0;
  CHECK(on.step_cost(sh).total_s == Approx(with).epsilon(1e-12));
  // Off by default: profiles without the field cost what they did.
  CHECK(CostParams{}.attn_part_key_s == 0);
}

TEST_CASE("enforce_eager adds exactly kernels * launch", "[cost]") {
  StepPlan p = plan_of({decode(1, 700), decode(2, 20)});
  CostParams no_launch;
  no_launch.kernel_launch_s = 0;
  no_launch.graph_launch_s = 0;
  StepCost eager = make("llama-3-8b", "h100-sxm", 1, true).step_cost(p);
  StepCost eager0 = make("llama-3-8b", "h100-sxm", 1, true, DType::bf16, no_launch).step_cost(p);
  StepCost graph = make("llama-3-8b", "h100-sxm", 1, false).step_cost(p);
  const double kernels = 9 * L + 2 + 2;  // per layer, embedding + final norm, lm_head + sampler
  CHECK(eager.total_s - eager0.total_s == Approx(kernels * 4e-6).epsilon(1e-9));
  CHECK(eager.compute_s == graph.compute_s);
  CHECK(graph.overhead_s == Approx(2e-5 + 3e-5 + 2e-6).epsilon(1e-12));
  CHECK(eager.overhead_s - graph.overhead_s == Approx(kernels * 4e-6 - 2e-5).epsilon(1e-9));

  // A step with any prefill runs eagerly even with CUDA graphs enabled.
  StepPlan mixed = plan_of({decode(1, 700), prefill(2, 64, 0, true)});
  CHECK(make("llama-3-8b", "h100-sxm", 1, false).step_cost(mixed).total_s ==
        make("llama-3-8b", "h100-sxm", 1, true).step_cost(mixed).total_s);
}

TEST_CASE("a 4096-token prefill is compute bound", "[cost]") {
  StepCost c = make().step_cost(plan_of({prefill(1, 4096, 0, true)}), true);
  const double T = 4096;
  for (const char* name : {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}) {
    INFO(name);
    const OpCost& o = op(c, name);
    CHECK(o.flops / kPeak > 2 * o.bytes / kBw);
    CHECK(o.seconds == Approx(o.flops / kPeak).epsilon(1e-12));
  }
  CHECK(op(c, "gate_up_proj").flops == L * 2 * T * H * 2 * I);
  const OpCost& a = op(c, "attn_prefill");
  CHECK(a.flops == L * 4 * (T * (T + 1) / 2) * 32 * HD);
  CHECK(a.seconds == Approx(a.flops / kAttnPeak).epsilon(1e-12));
  CHECK_FALSE(has_op(c, "attn_decode"));
  // lm_head runs for the one sampling row only.
  CHECK(op(c, "lm_head").flops == 2 * H * V);
}

TEST_CASE("tensor parallel halves GEMM time and adds all-reduces", "[cost]") {
  StepPlan p = plan_of({prefill(1, 4096, 0, true)});
  StepCost one = make("llama-3-8b", "h100-sxm", 1).step_cost(p, true);
  StepCost two = make("llama-3-8b", "h100-sxm", 2).step_cost(p, true);
  for (const char* name : {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "attn_prefill"}) {
    INFO(name);
    CHECK(op(two, name).seconds == Approx(op(one, name).seconds / 2).epsilon(1e-12));
  }
  CHECK_FALSE(has_op(one, "allreduce"));
  const double per = 8e-6 + 2 * (2 - 1) / 2.0 * (4096 * H * 2) / 450e9;
  CHECK(op(two, "allreduce").seconds == Approx((2 * L + 1) * per).epsilon(1e-12));
  CHECK(two.total_s < one.total_s);
  // Eager steps also launch the all-reduce kernels.
  CHECK(op(two, "launch").seconds - op(one, "launch").seconds ==
        Approx((2 * L + 1) * 4e-6).epsilon(1e-9));
}

TEST_CASE("tensor parallel shapes are validated", "[cost]") {
  CHECK_THROWS_AS(make("llama-3-8b", "h100-sxm", 3), ConfigError);
  CHECK_THROWS_WITH(make("llama-3-8b", "h100-sxm", 0), Catch::Contains("tensor-parallel"));
  CHECK_NOTHROW(make("llama-2-70b", "h100-sxm", 8));
  CHECK_NOTHROW(make("llama-3-8b", "h100-sxm", 16));  // 8 KV heads replicated over 16 ranks
  HardwareSpec lonely = *hardware_preset("h100-sxm");
  lonely.interconnect_bandwidth = 0;
  CHECK_THROWS_WITH(CostModel(*model_preset("llama-3-8b"), lonely, {}, DType::bf16, DType::bf16,
                              2, false),
                    Catch::Contains("interconnect"));
}

TEST_CASE("lm_head and sampling run only for sampling sequences", "[cost]") {
  CostModel cm = make();
  StepCost chunk = cm.step_cost(plan_of({prefill(1, 512, 1024, false)}), true);
  StepCost last = cm.step_cost(plan_of({prefill(1, 512, 1024, true)}), true);
  CHECK_FALSE(has_op(chunk, "lm_head"));
  CHECK_FALSE(has_op(chunk, "sampling"));
  CHECK(last.total_s - chunk.total_s ==
        Approx(op(last, "lm_head").seconds + op(last, "sampling").seconds + 2 * 4e-6)
            .epsilon(1e-9));
}

TEST_CASE("static-batching padding counts as decode rows", "[cost]") {
  CostModel cm = make("mistral-7b", "l40s");
  StepPlan padded = plan_of({decode(1, 300), decode(2, 20)});
  padded.num_padding_seqs = 3;
  padded.padded_context = 500;
  StepPlan explicit_rows = plan_of({decode(1, 300), decode(2, 20), decode(3, 499),
                                    decode(4, 499), decode(5, 499)});
  // Same work; padding rows are not scheduled, so they cost no per-sequence CPU.
  CHECK(cm.step_cost(padded).total_s ==
        Approx(cm.step_cost(explicit_rows).total_s - 3 * 1e-6).epsilon(1e-12));
}

TEST_CASE("swap and copy-on-write traffic", "[cost]") {
  CostModel cm = make();
  StepPlan base = plan_of({decode(1, 64)});
  StepPlan moved = base;
  moved.swap_out = {{1, 100}, {2, 101}};
  moved.swap_in = {{102, 3}, {103, 4}, {104, 5}};
  moved.copies = {{6, 7}};
  const double block = 16 * L * 2 * KV * 2;  // 2 MiB per 16-token block of llama-3-8b, bf16
  CHECK(block == 2097152.0);
  CHECK(cm.step_cost(moved).total_s - cm.step_cost(base).total_s ==
        Approx(5 * block / 64e9 + 2 * block / kBw).epsilon(1e-9));
  // Swap-only step: no forward pass, just the transfers and the scheduler.
  StepPlan swap_only;
  swap_only.swap_in = {{1, 2}};
  CHECK(cm.step_cost(swap_only).total_s == Approx(block / 64e9 + 3e-5).epsilon(1e-12));
}

TEST_CASE("CostParams JSON round trip and errors", "[cost]") {
  CostParams a;
  a.gemm_flops_eff = 0.61;
  a.kernels_per_layer = 11;
  a.attn_part_keys = 256;
  a.attn_part_key_s = 8e-8;
  CostParams b;
  b.apply_json(Json::parse(a.to_json().dump()), "profile.json");
  CHECK(b.to_json().dump() == a.to_json().dump());

  CostParams c;
  c.apply_json(Json::parse(R"({"graph_launch_s": 1.5e-5})"), "p.json");
  CHECK(c.graph_launch_s == 1.5e-5);
  CHECK(c.mem_bw_eff == CostParams{}.mem_bw_eff);

  CHECK_THROWS_WITH(c.apply_json(Json::parse(R"({"mem_bw_eff": 0.9, "gemm_eff": 0.5})"),
                                 "calib/h100.json"),
                    Catch::Contains("calib/h100.json") && Catch::Contains("gemm_eff"));
  CHECK(c.mem_bw_eff == CostParams{}.mem_bw_eff);  // a rejected profile changes nothing
  CHECK_THROWS_WITH(c.apply_json(Json::parse(R"({"attn_bw_eff": 1.5})"), "p.json"),
                    Catch::Contains("attn_bw_eff"));
  CHECK_THROWS_WITH(c.apply_json(Json::parse(R"({"step_cpu_s": "fast"})"), "p.json"),
                    Catch::Contains("p.json") && Catch::Contains("step_cpu_s"));
  CHECK_THROWS_AS(c.apply_json(Json::parse(R"({"kernels_per_layer": 2.5})"), "p.json"),
                  ConfigError);
  CHECK_THROWS_AS(c.apply_json(Json::parse("[]"), "p.json"), ConfigError);
  CHECK_THROWS_WITH(c.apply_json(Json::parse(R"({"attn_small_part_keys": 0})"), "p.json"),
                    Catch::Contains("attn_small_part_keys") && Catch::Contains("expected 1.."));
}

TEST_CASE("SimExecutor returns the cost model's step time", "[cost]") {
  SimExecutor ex(make("smollm2-135m", "rtx4090"));
  CHECK(ex.backend() == "sim");
  CHECK_FALSE(ex.real_tokens());
  StepPlan p = plan_of({decode(1, 10), prefill(2, 100, 0, true)});
  StepResult r = ex.execute(p);
  CHECK(r.duration_s == ex.cost_model().step_cost(p).total_s);
  CHECK(r.duration_s > 0);
  CHECK(r.sampled.empty());
}

TEST_CASE("the first eager forward at a token count pays new_rows_s", "[cost]") {
  // Graph mode warms the capture sizes (1, 2, 4, 8, 16, ..., max_num_seqs) and max_tokens;
  // both modes warm warm_gemms()' grid (3..63, then every 8th, 32nd and 128th count).
  RowHistory graphs(false, 20, 8192);
  CHECK_FALSE(graphs.first_use(4));
  CHECK_FALSE(graphs.first_use(16));
  CHECK_FALSE(graphs.first_use(20));
  CHECK_FALSE(graphs.first_use(8192));
  CHECK_FALSE(graphs.first_use(24));  // above max_num_seqs, but on the GEMM grid
  CHECK(graphs.first_use(65));        // between the grid's 64 and 72
  CHECK_FALSE(graphs.first_use(65));
  CHECK(graphs.first_use(100000));  // grows on demand
  RowHistory eager(true, 20, 2048);
  CHECK(eager.first_use(2));  // the GEMV counts: no capture in eager mode, not on the grid
  CHECK_FALSE(eager.first_use(4));
  CHECK(eager.first_use(2047));
  CHECK_FALSE(eager.first_use(2048));

  CostParams p;
  p.new_rows_s = 2e-3;
  const StepShape pre = StepShape::of(plan_of({prefill(1, 300, 0, true)}));
  const StepShape dec = StepShape::of(plan_of({decode(1, 100), decode(2, 50)}));
  const CostModel g = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p);
  const CostModel e = make("llama-3-8b", "h100-sxm", 1, true, DType::bf16, p);
  CHECK(g.step_cost(pre, false, true).total_s == Approx(g.step_cost(pre).total_s + 2e-3));
  // A graph replay makes no cuBLAS calls: nothing to pay.
  CHECK_FALSE(g.eager_forward(dec));
  CHECK(g.step_cost(dec, false, true).total_s == g.step_cost(dec).total_s);
  CHECK(e.eager_forward(dec));
  CHECK(e.step_cost(dec, false, true).total_s == Approx(e.step_cost(dec).total_s + 2e-3));

  // The simulator remembers: the second prefill of 300 tokens costs the plain step time.
  SimExecutor ex(make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p));
  const StepPlan pp = plan_of({prefill(1, 300, 0, true)});
  CHECK(ex.execute(pp).duration_s == Approx(g.step_cost(pre).total_s + 2e-3));
  CHECK(ex.execute(pp).duration_s == g.step_cost(pre).total_s);
}

TEST_CASE("the first replay of each captured graph pays graph_first_s", "[cost]") {
  // Capture sizes at max_num_seqs 20: 1, 2, 4, 8, 16, 20. A batch replays the smallest >= it.
  auto graph_step = [](int32_t decodes, int32_t prefill = 0) {
    StepShape s;
    s.decode_tokens = decodes;
    s.prefill_tokens = prefill;
    return s;
  };
  RowHistory h(false, 20, 8192);
  CHECK(h.first_replay(graph_step(3), false));         // graph 4
  CHECK_FALSE(h.first_replay(graph_step(4), false));   // graph 4 again
  CHECK(h.first_replay(graph_step(17), false));        // graph 20
  CHECK_FALSE(h.first_replay(graph_step(20), false));
  CHECK_FALSE(h.first_replay(graph_step(21), false));  // above every capture size
  CHECK_FALSE(h.first_replay(graph_step(1, 30), false));  // a prefill step runs eagerly
  CHECK(h.first_replay(graph_step(1), false));
  StepShape padded = graph_step(7);
  padded.padding_seqs = 1;                              // 8 rows: graph 8
  CHECK(h.first_replay(padded, false));
  CHECK_FALSE(h.first_replay(graph_step(8), false));
  RowHistory eager(true, 20, 8192);
  CHECK_FALSE(eager.first_replay(graph_step(3), true));  // no graphs in eager mode
  CostParams p;
  p.graph_first_s = 0.8e-3;
  const CostModel g = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p);
  const CostModel e = make("llama-3-8b", "h100-sxm", 1, true, DType::bf16, p);
  const StepShape dec = StepShape::of(plan_of({decode(1, 100), decode(2, 50), decode(3, 70)}));
  const StepShape pre = StepShape::of(plan_of({prefill(1, 300, 0, true)}));
  CHECK(g.step_cost(dec, false, false, 0, false, true).total_s ==
        Approx(g.step_cost(dec).total_s + 0.8e-3));
  // Only graph replays pay it: eager decodes and prefills launch kernels one by one.
  CHECK(e.step_cost(dec, false, false, 0, false, true).total_s == e.step_cost(dec).total_s);
  CHECK(g.step_cost(pre, false, false, 0, false, true).total_s == g.step_cost(pre).total_s);

  // The simulator: batches 3 and then 4 replay graph 4, whose first replay alone pays.
  SimExecutor ex(g, RowHistory(false, 20, 8192));
  const StepPlan d3 = plan_of({decode(1, 100), decode(2, 50), decode(3, 70)});
  const StepPlan d4 = plan_of({decode(1, 101), decode(2, 51), decode(3, 71), decode(4, 10)});
  CHECK(ex.execute(d3).duration_s == Approx(g.step_cost(d3).total_s + 0.8e-3));
  CHECK(ex.execute(d4).duration_s == g.step_cost(d4).total_s);
}

TEST_CASE("RowHistory starts with CudaExecutor::warm_gemms' counts seen", "[cost]") {
  // 3..63 every count, 64..504 every 8th, 512..2048 every 32nd, then every 128th to max_tokens:
  // the 214 counts `twinfer calibrate` logs at 8,192 tokens.
  const std::vector<int32_t> c = gemm_warm_counts(RowHistory::kGemmWarmFrom, 8192);
  CHECK(c.size() == 214);
  CHECK(c.front() == 3);
  CHECK(c[61] == 64);
  CHECK(c[62] == 72);
  CHECK(c.back() == 8192);
  CHECK(gemm_warm_counts(RowHistory::kGemmWarmFrom, 2).empty());
  // A prefill at a warmed count is not new, in either mode; one between grid points is.
  for (bool eager : {false, true}) {
    RowHistory h(eager, 256, 8192);
    CHECK_FALSE(h.first_use(40));
    CHECK_FALSE(h.first_use(296));
    CHECK_FALSE(h.first_use(8064));
    CHECK(h.first_use(300));
    CHECK_FALSE(h.last_new_band());  // 296 and 304 share its band of 32 rows
    CHECK(h.first_use(8100));
    CHECK(h.last_new_band());  // above 2,048 the grid steps by 128: 8,097..8,128 holds none
    CHECK(h.fresh_count() == 2);
  }
}

TEST_CASE("early new token counts and new row bands cost more", "[cost]") {
  // Ordinals count only first uses after the warm-up counts; bands are kRowBand rows wide and
  // the warm-up counts mark theirs.
  RowHistory h(false, 8, 40);  // warms 1, 2, 4, 8, 40 and the GEMM grid 3..40 (bands 0 and 1)
  CHECK(h.fresh_count() == 0);
  CHECK_FALSE(h.first_use(20));
  CHECK(h.first_use(70));
  CHECK(h.last_new_band());  // band 65..96: no warm-up count
  CHECK(h.fresh_count() == 1);
  CHECK(h.first_use(80));
  CHECK_FALSE(h.last_new_band());
  CHECK(h.first_use(300));
  CHECK(h.last_new_band());
  CHECK_FALSE(h.first_use(300));
  CHECK(h.fresh_count() == 3);
  CHECK(h.first_use(301));
  CHECK_FALSE(h.last_new_band());

  CostParams p;
  p.new_rows_s = 1e-3;
  p.new_rows_early_s = 8e-3;
  p.new_rows_early_n = 10;
  p.new_band_s = 3e-3;
  const CostModel g = make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p);
  const StepShape pre = StepShape::of(plan_of({prefill(1, 300, 0, true)}));
  const double plain = g.step_cost(pre).total_s;
  CHECK(g.step_cost(pre, false, true, 0).total_s == Approx(plain + 9e-3));
  CHECK(g.step_cost(pre, false, true, 10).total_s == Approx(plain + 1e-3 + 8e-3 * std::exp(-1.0)));
  CHECK(g.step_cost(pre, false, true, 10, true).total_s ==
        Approx(plain + 4e-3 + 8e-3 * std::exp(-1.0)));
  CHECK(g.step_cost(pre, false, false, 0, true).total_s == plain);  // not new: nothing extra

  // The simulator: its first new count is ordinal 0 in a new band; a repeat pays nothing.
  SimExecutor ex(make("llama-3-8b", "h100-sxm", 1, false, DType::bf16, p), RowHistory(false, 8, 40));
  const StepPlan pp = plan_of({prefill(1, 300, 0, true)});
  CHECK(ex.execute(pp).duration_s == Approx(plain + 12e-3));
  CHECK(ex.execute(pp).duration_s == plain);
  const StepPlan pq = plan_of({prefill(1, 301, 0, true)});
  CHECK(ex.execute(pq).duration_s ==
        Approx(g.step_cost(StepShape::of(pq)).total_s + 1e-3 + 8e-3 * std::exp(-0.1)));
}

TEST_CASE("default CUDA-graph capture sizes follow vLLM's list, cut at max_num_seqs", "[cost]") {
  const std::vector<int32_t> all = default_cudagraph_sizes(512);
  CHECK(all.size() == 3 + 32 + 16);
  CHECK(all[3] == 8);
  CHECK(all[34] == 256);
  CHECK(all[35] == 272);
  CHECK(all.back() == 512);
  CHECK(default_cudagraph_sizes(100).back() == 100);  // max_num_seqs itself is captured
  CHECK(default_cudagraph_sizes(96).back() == 96);
  CHECK(default_cudagraph_sizes(1) == std::vector<int32_t>{1});
  CHECK(default_cudagraph_sizes(3) == std::vector<int32_t>{1, 2, 3});
  CHECK(default_cudagraph_sizes(2000).back() == 512);
  CHECK(default_cudagraph_sizes(0).empty());
}
