// Roofline cost model of one engine step; every formula is written out in docs/cost-model.md.
// step_cost runs ~300k times per trace simulation: one pass over the scheduled sequences, then
// a fixed number of arithmetic ops; it allocates only when a breakdown is asked for.
#include "sim/cost_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace twinfer {


// ---------------------------------------------------------------------------------------------
// CostParams <-> JSON

namespace {


}  // namespace

Json CostParams::to_json() const {
  Json j = Json::object();
  for (const CostParamField& f : kCostParamFields) j[f.name] = this->*f.ptr;
  for (const CostParamInt& f : kCostParamInts) j[f.name] = this->*f.ptr;
  return j;
}

void CostParams::apply_json(const Json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": cost profile: expected a JSON object");
  // Validate everything into a copy first so a bad profile leaves *this untouched.
  CostParams next = *this;
  for (const auto& [key, value] : j.as_object()) {
    const std::string where = source + ": cost profile field '" + key + "'";
    try {
      auto in = std::find_if(std::begin(kCostParamInts), std::end(kCostParamInts),
                             [&](const CostParamInt& f) { return key == f.name; });
      if (in != std::end(kCostParamInts)) {
        const int64_t k = value.as_int(key);
        if (k < in->lo || k > in->hi)
          throw ConfigError(where + ": expected " + std::to_string(in->lo) + ".." +
                            std::to_string(in->hi) + ", got " + value.dump());
        next.*(in->ptr) = static_cast<int>(k);
        continue;
      }
      auto it = std::find_if(std::begin(kCostParamFields), std::end(kCostParamFields),
                             [&](const CostParamField& f) { return key == f.name; });
      if (it == std::end(kCostParamFields)) {
        std::string known;
        for (const CostParamField& f : kCostParamFields) known += std::string(f.name) + ", ";
        for (const CostParamInt& f : kCostParamInts) known += std::string(f.name) + ", ";
        known.resize(known.size() - 2);
        throw ConfigError(source + ": unknown cost profile field '" + key + "' (known: " + known + ")");
      }
      double v = value.as_number(key);
      if (it->is_efficiency ? !(v > 0 && v <= 1) : !(v >= 0 && std::isfinite(v)))
        throw ConfigError(where + ": expected " +
                          (it->is_efficiency ? "a fraction in (0, 1]" : "seconds >= 0") +
                          ", got " + value.dump());
      next.*(it->ptr) = v;
    } catch (const JsonError& e) {
      throw ConfigError(source + ": cost profile: " + e.what());
    }
  }
  *this = next;
}

// ---------------------------------------------------------------------------------------------
// RowHistory

RowHistory::RowHistory(bool eager, int32_t max_num_seqs, int32_t max_tokens) {
  if (!eager && max_num_seqs > 0)
    for (int32_t b : default_cudagraph_sizes(max_num_seqs)) {
      first_use(b);  // each capture size's warm-up forward
      graph_sizes_.push_back(b);
    }
  if (max_tokens > 0) first_use(max_tokens);
  for (int32_t t : twinfer::gemm_warm_counts(kGemmWarmFrom, max_tokens)) first_use(t);
  fresh_ = 0;
  replayed_.assign(graph_sizes_.size(), 0);
}

bool RowHistory::first_replay(const StepShape& shape, bool eager) {
  if (eager || shape.prefill_tokens > 0 || shape.decode_tokens <= 0) return false;
  const int32_t rows = shape.decode_tokens + std::max(0, shape.padding_seqs);
  const auto it = std::lower_bound(graph_sizes_.begin(), graph_sizes_.end(), rows);
  if (it == graph_sizes_.end()) return false;
  uint8_t& r = replayed_[static_cast<size_t>(it - graph_sizes_.begin())];
  if (r) return false;
  r = 1;
  return true;
}


bool RowHistory::first_use(int32_t rows) {
  if (rows < 0) return false;
  const size_t r = static_cast<size_t>(rows);
  if (r >= seen_.size()) seen_.resize(std::max<size_t>(r + 1, 2 * seen_.size()), 0);
  if (seen_[r]) return false;
  seen_[r] = 1;
  ++fresh_;
  const size_t b = r == 0 ? 0 : (r - 1) / kRowBand;
  if (b >= band_seen_.size()) band_seen_.resize(std::max<size_t>(b + 1, 2 * band_seen_.size()), 0);
  last_band_ = !band_seen_[b];
  band_seen_[b] = 1;
  return true;
}

// ---------------------------------------------------------------------------------------------
// CostModel

CostModel::CostModel(ModelSpec model, HardwareSpec hw, CostParams params, DType weight_dtype,
                     DType kv_dtype, int tensor_parallel, bool enforce_eager)
    : model_(std::move(model)),
      hw_(std::move(hw)),
      params_(params),
      wdtype_(weight_dtype),
      kvdtype_(kv_dtype),
      tp_(tensor_parallel),
      eager_(enforce_eager) {
  const std::string who = "cost model (" + model_.name + " on " + hw_.name + ")";
  if (tp_ < 1) throw ConfigError(who + ": tensor-parallel size must be >= 1");
  if (model_.num_heads % tp_ != 0)
    throw ConfigError(who + ": tensor-parallel size " + std::to_string(tp_) +
                      " does not divide num_heads " + std::to_string(model_.num_heads));
  if (model_.num_kv_heads % tp_ != 0 && tp_ % model_.num_kv_heads != 0)
    throw ConfigError(who + ": tensor-parallel size " + std::to_string(tp_) +
                      " and num_kv_heads " + std::to_string(model_.num_kv_heads) +
                      " must divide one another");
  if (tp_ > 1 && !(hw_.interconnect_bandwidth > 0))
    throw ConfigError(who + ": tensor parallelism needs the hardware's interconnect_bandwidth");
  if (!(hw_.bf16_flops > 0) || !(hw_.hbm_bandwidth > 0) || !(hw_.pcie_bandwidth > 0))
    throw ConfigError(who + ": hardware needs bf16_flops, hbm_bandwidth and pcie_bandwidth > 0");
  if (model_.num_layers <= 0 || model_.hidden_size <= 0 || model_.head_dim <= 0)
    throw ConfigError(who + ": model shape is empty");
}

StepCost CostModel::step_cost(const StepPlan& plan, bool breakdown) const {
  return step_cost(StepShape::of(plan), breakdown);
}

double CostModel::new_rows_cost(int32_t new_rows_ordinal) const {
  const CostParams& p = params_;
  double s = p.new_rows_s;
  if (p.new_rows_early_s > 0 && p.new_rows_early_n > 0)
    s += p.new_rows_early_s * std::exp(-static_cast<double>(new_rows_ordinal) / p.new_rows_early_n);
  return s;
}

StepCost CostModel::step_cost(const StepShape& shape, bool breakdown, bool new_rows,
                              int32_t new_rows_ordinal, bool new_band, bool first_replay) const {
  const ModelSpec& m = model_;
  const CostParams& p = params_;
  StepCost out;

  // Sums over the batch (StepShape). "pairs" counts (query, key) pairs of causal attention.
  double tokens = shape.prefill_tokens + shape.decode_tokens;
  double sample_rows = shape.sample_rows;
  const double pre_tokens = shape.prefill_tokens;
  const double pre_pairs = static_cast<double>(shape.prefill_pairs);
  const double pre_ctx = static_cast<double>(shape.prefill_context);
  double dec_tokens = shape.decode_tokens;
  double dec_pairs = static_cast<double>(shape.decode_pairs);
  double dec_ctx = static_cast<double>(shape.decode_context);
  // Static-batching padding: finished members still run one decode row at padded_context.
  const double pad = std::max(0, shape.padding_seqs);
  const double pad_ctx = std::max(0, shape.padded_context);
  tokens += pad;
  sample_rows += pad;
  dec_tokens += pad;
  dec_pairs += pad * pad_ctx;
  dec_ctx += pad * pad_ctx;

  // Per-rank shapes under tensor parallelism: heads, MLP columns and vocab split by tp;
  // KV heads split too, or replicated one per rank when there are fewer KV heads than ranks.
  const double tp = tp_;
  const double L = static_cast<double>(m.num_layers);
  const double H = static_cast<double>(m.hidden_size);
  const double hd = static_cast<double>(m.head_dim);
  const double hq = static_cast<double>(m.num_heads) / tp;
  const double hkv = m.num_kv_heads >= tp_ ? static_cast<double>(m.num_kv_heads) / tp : 1.0;
  const double q_r = hq * hd, kv_r = hkv * hd;
  const double I_r = static_cast<double>(m.intermediate_size) / tp;
  const double V = static_cast<double>(m.vocab_size);
  const double V_r = std::ceil(V / tp);

  const double wb = dtype_bytes(wdtype_);
  const double ab = wdtype_ == DType::f32 ? 4.0 : 2.0;  // activation bytes
  const double kvb = dtype_bytes(kvdtype_);
  const double kv_tok_layer = 2.0 * kv_r * kvb;  // K and V of one token in one layer, per rank

  // fp8 weights run fp8 GEMMs where the GPU has them (else weight-only dequant at bf16 rate);
  // fp32 runs on TF32 tensor cores at half the bf16 rate.
  const double base_peak = wdtype_ == DType::f32 ? hw_.bf16_flops / 2 : hw_.bf16_flops;
  const double gemm_peak = (wdtype_ == DType::fp8_e4m3 && hw_.fp8_flops > 0)
                               ? hw_.fp8_flops * p.gemm_flops_eff
                               : base_peak * p.gemm_flops_eff;
  const double attn_peak = base_peak * p.attn_flops_eff;
  const double mem_bw = hw_.hbm_bandwidth * p.mem_bw_eff;
  const double attn_bw =
      hw_.hbm_bandwidth * (kvdtype_ == DType::fp8_e4m3 ? p.attn_fp8_bw_eff : p.attn_bw_eff);
  const double gemv_bw = hw_.hbm_bandwidth * p.gemv_bw_eff;

  if (breakdown) out.ops.reserve(18);
  auto add = [&](const char* name, double flops, double bytes, double seconds) {
    out.compute_s += seconds;
    if (breakdown) out.ops.push_back(OpCost{name, flops, bytes, seconds});
  };
  auto roof = [](double flops, double peak, double bytes, double bw) {
    return std::max(flops / peak, bytes / bw);
  };
  // A [T, K] x [K, N] GEMM: weights read once for the whole batch, activations in and out.
  // T <= gemv_max_rows streams the weights through the GEMV kernel at its own bandwidth; a
  // cuBLAS GEMM's FLOP rate grows with its rows, T / (T + gemm_half_rows) of the large-GEMM rate.
  auto gemm = [&](const char* name, double rows, double K, double N, double extra_w,
                  double out_bytes, double count) {
    const double flops = 2 * rows * K * N;
    const double bytes = (K * N + extra_w) * wb + rows * K * ab + rows * N * out_bytes;
    const bool gemv = rows <= p.gemv_max_rows;
    const double peak = gemv ? gemm_peak : gemm_peak * rows / (rows + p.gemm_half_rows);
    add(name, flops * count, bytes * count,
        count * roof(flops, peak, bytes, gemv ? gemv_bw : mem_bw));
  };

  const double T = tokens;
  if (T > 0) {
    // Embedding gather (vocab-parallel: each rank reads the rows it owns), output [T, H].
    const double emb_bytes = T * H * (wb / tp + ab);
    add("embedding", 0, emb_bytes, emb_bytes / mem_bw);

    gemm("qkv_proj", T, H, q_r + 2 * kv_r, m.qkv_bias ? q_r + 2 * kv_r : 0, ab, L);
    if (pre_tokens > 0) {
      // Causal attention over the new tokens against context_before + new keys. Reads K/V of
      // the whole context, writes the new tokens' K/V into the cache, reads Q and writes O.
      const double flops = 4 * pre_pairs * hq * hd;
      const double bytes = (pre_ctx + pre_tokens) * kv_tok_layer + pre_tokens * 2 * q_r * ab;
      const double t = roof(flops, attn_peak, bytes, attn_bw);
      // The last query block's chain of key tiles, at the mean prefill context.
      const double pre_seqs = std::max(1, shape.num_seqs - shape.decode_tokens);
      const double latency =
          p.attn_prefill_tile_s * std::ceil(pre_ctx / pre_seqs / p.attn_prefill_tile_keys);
      add("attn_prefill", flops * L, bytes * L, L * (latency > 0 ? std::hypot(t, latency) : t));
    }
    if (dec_tokens > 0) {
      // Paged decode attention: each sequence streams its context_after tokens of K/V.
      const double flops = 4 * dec_pairs * hq * hd;
      // Small batches (64-key partitions) stream at their own rate; an fp8 cache at its own,
      // scaled by the same small-batch factor.
      const double bytes = (dec_ctx + dec_tokens) * kv_tok_layer + dec_tokens * 2 * q_r * ab;
      const bool small = dec_tokens <= p.attn_small_max_batch;
      const double bw = small ? attn_bw * p.attn_small_bw_eff / p.attn_bw_eff : attn_bw;
      const double stream = roof(flops, attn_peak, bytes, bw);
      // Shapes without the longest context (none is recorded for padding rows) use the mean.
      double longest = shape.decode_max_context > 0 ? shape.decode_max_context
                                                    : std::ceil(dec_ctx / dec_tokens);
      if (pad > 0) longest = std::max(longest, pad_ctx);
      const double latency =
          p.attn_part_key_s * std::min(longest, double(small ? p.attn_small_part_keys : p.attn_part_keys));
      add("attn_decode", flops * L, bytes * L, L * std::hypot(stream, latency));
    }
    gemm("o_proj", T, q_r, H, 0, ab, L);
    gemm("gate_up_proj", T, H, 2 * I_r, 0, ab, L);
    gemm("down_proj", T, I_r, H, 0, ab, L);

    // Fused residual-add + RMSNorm reads x and the residual and writes both: 4 [T, H] passes.
    // Two per layer plus the final norm.
    const double norm_bytes = (2 * L + 1) * (4 * T * H * ab + H * wb);
    add("norm", 0, norm_bytes, norm_bytes / mem_bw);
    // SiLU(gate) * up: reads [T, 2 I_r], writes [T, I_r].
    const double act_bytes = L * 3 * T * I_r * ab;
    add("activation", 0, act_bytes, act_bytes / mem_bw);

    if (tp_ > 1) {
      // Ring all-reduce of [T, H] after o_proj and down_proj in every layer, plus the one
      // after the vocab-parallel embedding.
      const double count = 2 * L + 1;
      const double bytes = T * H * ab;
      const double one = p.allreduce_alpha_s + 2 * (tp - 1) / tp * bytes / hw_.interconnect_bandwidth;
      add("allreduce", 0, count * bytes, count * one);
    }
  }

  const double R = sample_rows;
  if (R > 0) {
    // lm_head only for the rows that sample; fp32 logits [R, V_r].
    gemm("lm_head", R, H, V_r, 0, 4.0, 1);
    if (tp_ > 1) {
      const double bytes = R * V * 4;
      add("logits_gather", 0, bytes,
          p.allreduce_alpha_s + (tp - 1) / tp * bytes / hw_.interconnect_bandwidth);
    }
    // Softmax / top-k / top-p read the logits; the per-row part (penalties, sorting, CPU
    // bookkeeping) is sampling_s_per_seq.
    const double bytes = R * V * 4;
    add("sampling", 0, bytes, bytes / mem_bw + R * p.sampling_s_per_seq);
  }

  // KV block traffic. Each rank moves its own shard of a block, all ranks in parallel.
  const double block_bytes = shape.block_size * L * kv_tok_layer;
  const double swaps = shape.swapped_blocks;
  if (swaps > 0) {
    const double bytes = swaps * block_bytes;
    add("swap", 0, bytes, bytes / hw_.pcie_bandwidth);
  }
  if (shape.copied_blocks > 0) {
    const double bytes = static_cast<double>(shape.copied_blocks) * 2 * block_bytes;
    add("copy_blocks", 0, bytes, bytes / mem_bw);
  }

  // Launch overhead: a decode-only step replays one captured graph; any step with prefill runs
  // eagerly, as vLLM's full-graph decode capture does.
  double launch = 0;
  if (T > 0) {
    if (!eager_ && pre_tokens == 0) {
      launch = p.graph_launch_s + (first_replay ? p.graph_first_s : 0.0);
    } else {
      double kernels = p.kernels_per_layer * L + 2;   // + embedding, final norm
      if (R > 0) kernels += 2;                        // lm_head, sampler
      if (tp_ > 1) kernels += 2 * L + 1;              // all-reduces
      launch = kernels * p.kernel_launch_s;
    }
  }
  double cpu = p.step_cpu_s + p.per_seq_cpu_s * static_cast<double>(shape.num_seqs);
  if (new_rows && eager_forward(shape))
    cpu += new_rows_cost(new_rows_ordinal) + (new_band ? p.new_band_s : 0.0);
  out.overhead_s = launch + cpu;
  if (breakdown) {
    out.ops.push_back(OpCost{"launch", 0, 0, launch});
    out.ops.push_back(OpCost{"cpu", 0, 0, cpu});
  }
  out.total_s = out.compute_s + out.overhead_s;
  return out;
}

}  // namespace twinfer
