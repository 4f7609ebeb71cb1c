#include "core/cpu_executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "core/error.h"
#include "core/sampling.h"

namespace twinfer {

using cpu::Scratch;

std::vector<float> forward_logits(const ModelWeights& w, std::span<const int32_t> tokens) {
  const ModelSpec& s = w.spec;
  const auto T = static_cast<int64_t>(tokens.size());
  const int64_t H = s.hidden_size, KD = s.kv_dim(), QD = s.q_dim(), QKV = QD + 2 * KD;
  std::vector<float> logits(static_cast<size_t>(T * s.vocab_size));
  if (T == 0) return logits;
  Scratch sc;
  sc.resize(s, T);
  std::vector<int32_t> pos(tokens.size());
  for (int64_t t = 0; t < T; ++t) {
    pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
    std::memcpy(sc.x.data() + t * H, w.embed.data() + tokens[static_cast<size_t>(t)] * H,
                static_cast<size_t>(H) * sizeof(float));
  }
  cpu::rope_tables(pos, w.rope_inv_freq, sc.cos.data(), sc.sin.data());
  // Contiguous K and V of the whole sequence for the current layer: [T, kv_dim].
  std::vector<float> K(static_cast<size_t>(T * KD)), V(K.size());
  for (const LayerWeights& L : w.layers) {
    cpu::layer_qkv(w, L, T, sc);
    for (int64_t t = 0; t < T; ++t) {
      const float* row = sc.qkv.data() + t * QKV;
      std::memcpy(K.data() + t * KD, row + QD, static_cast<size_t>(KD) * sizeof(float));
      std::memcpy(V.data() + t * KD, row + QD + KD, static_cast<size_t>(KD) * sizeof(float));
    }
    cpu::attention(s, sc.qkv.data(), QKV, T, 0, K.data(), V.data(), sc.attn.data(), QD,
                   sc.scores);
    cpu::layer_out(w, L, T, sc);
  }
  cpu::rms_norm(sc.x.data(), T, H, w.final_norm.data(), static_cast<float>(s.rms_norm_eps),
                sc.h.data());
  cpu::linear(sc.h.data(), T, H, w.lm_head_data(), s.vocab_size, nullptr, logits.data());
  return logits;
}

CpuExecutor::CpuExecutor(ModelWeights&& weights, int32_t num_gpu_blocks, int32_t num_cpu_blocks,
                         int32_t block_size, uint64_t run_seed)
    : w_(std::move(weights)),
      num_gpu_blocks_(num_gpu_blocks),
      num_cpu_blocks_(num_cpu_blocks),
      block_size_(block_size),
      run_seed_(run_seed) {
  if (num_gpu_blocks <= 0 || num_cpu_blocks < 0 || block_size <= 0)
    throw ConfigError("cpu executor: need num_gpu_blocks > 0, num_cpu_blocks >= 0 and "
                      "block_size > 0, got " + std::to_string(num_gpu_blocks) + ", " +
                      std::to_string(num_cpu_blocks) + ", " + std::to_string(block_size));
  check_supported(w_.spec, w_.source);
  block_floats_ = static_cast<size_t>(w_.spec.num_layers * block_size * w_.spec.kv_dim());
  k_pool_.assign(static_cast<size_t>(num_gpu_blocks) * block_floats_, 0.0f);
  v_pool_.assign(k_pool_.size(), 0.0f);
  k_host_.assign(static_cast<size_t>(num_cpu_blocks) * block_floats_, 0.0f);
  v_host_.assign(k_host_.size(), 0.0f);
}

float* CpuExecutor::kv_slot(std::vector<float>& pool, BlockId b, int64_t layer, int64_t slot) {
  const auto kvd = static_cast<size_t>(w_.spec.kv_dim());
  return pool.data() + static_cast<size_t>(b) * block_floats_ +
         static_cast<size_t>(layer * block_size_ + slot) * kvd;
}

void CpuExecutor::do_swaps_and_copies(const StepPlan& plan) {
  // Every swap source is read before any destination is written, so a block freed by a swap
  // and reused by the opposite swap in the same step keeps its old content for the reader.
  const size_t n = plan.swap_out.size() + plan.swap_in.size();
  if (n > 0) {
    staging_.resize(2 * n * block_floats_);
    const size_t bytes = block_floats_ * sizeof(float);
    auto check = [](BlockId b, int32_t limit, const char* what) {
      if (b < 0 || b >= limit)
        throw std::logic_error(std::string("cpu executor: ") + what + " block " + std::to_string(b) +
                          " out of range [0, " + std::to_string(limit) + ")");
    };
    size_t i = 0;
    for (auto [gpu, host] : plan.swap_out) {
      check(gpu, num_gpu_blocks_, "swap_out gpu");
      check(host, num_cpu_blocks_, "swap_out cpu");
      std::memcpy(&staging_[(2 * i) * block_floats_], &k_pool_[gpu * block_floats_], bytes);
      std::memcpy(&staging_[(2 * i + 1) * block_floats_], &v_pool_[gpu * block_floats_], bytes);
      ++i;
    }
    for (auto [host, gpu] : plan.swap_in) {
      check(host, num_cpu_blocks_, "swap_in cpu");
      check(gpu, num_gpu_blocks_, "swap_in gpu");
      std::memcpy(&staging_[(2 * i) * block_floats_], &k_host_[host * block_floats_], bytes);
      std::memcpy(&staging_[(2 * i + 1) * block_floats_], &v_host_[host * block_floats_], bytes);
      ++i;
    }
    i = 0;
    for (auto [gpu, host] : plan.swap_out) {
      std::memcpy(&k_host_[host * block_floats_], &staging_[(2 * i) * block_floats_], bytes);
      std::memcpy(&v_host_[host * block_floats_], &staging_[(2 * i + 1) * block_floats_], bytes);
      ++i;
    }
    for (auto [host, gpu] : plan.swap_in) {
      std::memcpy(&k_pool_[gpu * block_floats_], &staging_[(2 * i) * block_floats_], bytes);
      std::memcpy(&v_pool_[gpu * block_floats_], &staging_[(2 * i + 1) * block_floats_], bytes);
      ++i;
    }
  }
  for (auto [src, dst] : plan.copies) {
    if (src < 0 || src >= num_gpu_blocks_ || dst < 0 || dst >= num_gpu_blocks_)
      throw std::logic_error("cpu executor: copy-on-write (" + std::to_string(src) + " -> " +
                        std::to_string(dst) + ") out of range [0, " +
                        std::to_string(num_gpu_blocks_) + ")");
    std::copy_n(&k_pool_[src * block_floats_], block_floats_, &k_pool_[dst * block_floats_]);
    std::copy_n(&v_pool_[src * block_floats_], block_floats_, &v_pool_[dst * block_floats_]);
  }
}

std::string CpuExecutor::check_seq(const ScheduledSeq& q, int32_t plan_block_size) const {
  return check_scheduled_seq(q, plan_block_size, block_size_, num_gpu_blocks_, w_.spec.vocab_size,
                             "cpu executor");
}

StepResult CpuExecutor::execute(const StepPlan& plan) {
  const auto t0 = std::chrono::steady_clock::now();
  StepResult res;
  do_swaps_and_copies(plan);

  const ModelSpec& s = w_.spec;
  const int64_t H = s.hidden_size, KD = s.kv_dim(), QD = s.q_dim(), QKV = QD + 2 * KD;
  live_.clear();
  row_start_.clear();
  row_tok_.clear();
  row_pos_.clear();
  ok_.assign(plan.seqs.size(), 0);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& q = plan.seqs[i];
    std::string err = check_seq(q, plan.block_size);
    if (!err.empty()) {
      res.failed.emplace_back(q.id, std::move(err));
      continue;
    }
    ok_[i] = 1;
    live_.push_back(i);
    row_start_.push_back(static_cast<int64_t>(row_tok_.size()));
    for (int32_t p = q.context_before; p < q.context_after(); ++p) {
      row_tok_.push_back((*q.tokens)[static_cast<size_t>(p)]);
      row_pos_.push_back(p);
    }
  }
  const auto T = static_cast<int64_t>(row_tok_.size());
  logit_ids_.clear();

  if (T > 0) {
    sc_.resize(s, T);
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(sc_.x.data() + t * H, w_.embed.data() + row_tok_[static_cast<size_t>(t)] * H,
                  static_cast<size_t>(H) * sizeof(float));
    cpu::rope_tables(row_pos_, w_.rope_inv_freq, sc_.cos.data(), sc_.sin.data());
    for (int64_t l = 0; l < s.num_layers; ++l) {
      const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
      cpu::layer_qkv(w_, L, T, sc_);
      for (size_t k = 0; k < live_.size(); ++k) {
        const ScheduledSeq& q = plan.seqs[live_[k]];
        const int64_t r0 = row_start_[k];
        // Write this step's K/V rows into their slots, then gather the whole context.
        for (int64_t j = 0; j < q.num_new_tokens; ++j) {
          const int64_t p = q.context_before + j;
          const BlockId b = q.block_table[static_cast<size_t>(p / block_size_)];
          const float* row = sc_.qkv.data() + (r0 + j) * QKV;
          std::memcpy(kv_slot(k_pool_, b, l, p % block_size_), row + QD,
                      static_cast<size_t>(KD) * sizeof(float));
          std::memcpy(kv_slot(v_pool_, b, l, p % block_size_), row + QD + KD,
                      static_cast<size_t>(KD) * sizeof(float));
        }
        const int64_t ctx = q.context_after();
        if (k_ctx_.size() < static_cast<size_t>(ctx * KD)) {
          k_ctx_.resize(static_cast<size_t>(ctx * KD));
          v_ctx_.resize(k_ctx_.size());
        }
        for (int64_t p0 = 0; p0 < ctx; p0 += block_size_) {
          const BlockId b = q.block_table[static_cast<size_t>(p0 / block_size_)];
          const auto n = static_cast<size_t>(std::min<int64_t>(block_size_, ctx - p0) * KD);
          std::memcpy(k_ctx_.data() + p0 * KD, kv_slot(k_pool_, b, l, 0), n * sizeof(float));
          std::memcpy(v_ctx_.data() + p0 * KD, kv_slot(v_pool_, b, l, 0), n * sizeof(float));
        }
        cpu::attention(s, sc_.qkv.data() + r0 * QKV, QKV, q.num_new_tokens, q.context_before,
                       k_ctx_.data(), v_ctx_.data(), sc_.attn.data() + r0 * QD, QD, sc_.scores);
      }
      cpu::layer_out(w_, L, T, sc_);
    }

    // lm_head only for the rows that sample: the last row of each sampling sequence.
    int64_t S = 0;
    for (size_t k = 0; k < live_.size(); ++k)
      if (plan.seqs[live_[k]].samples) ++S;
    final_h_.resize(static_cast<size_t>(S * H));
    logits_.resize(static_cast<size_t>(S * s.vocab_size));
    for (size_t k = 0; k < live_.size(); ++k) {
      const ScheduledSeq& q = plan.seqs[live_[k]];
      if (!q.samples) continue;
      const int64_t last = row_start_[k] + q.num_new_tokens - 1;
      cpu::rms_norm(sc_.x.data() + last * H, 1, H, w_.final_norm.data(),
                    static_cast<float>(s.rms_norm_eps),
                    final_h_.data() + static_cast<int64_t>(logit_ids_.size()) * H);
      logit_ids_.push_back(q.id);
    }
    cpu::linear(final_h_.data(), S, H, w_.lm_head_data(), s.vocab_size, nullptr, logits_.data());
  }

  size_t li = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& q = plan.seqs[i];
    if (!q.samples) continue;
    if (!ok_[i]) {
      res.sampled.push_back(-1);
      continue;
    }
    const float* row = logits_.data() + li * static_cast<size_t>(s.vocab_size);
    ++li;
    sample_row_.assign(row, row + s.vocab_size);
    // tokens holds prompt then output; the last `generated` ids are the output so far.
    const std::span<const int32_t> all(q.tokens->data(), static_cast<size_t>(q.context_after()));
    const size_t gen = std::min<size_t>(static_cast<size_t>(std::max(q.generated, 0)), all.size());
    const uint64_t key = sampling_key(*q.sampling, run_seed_, q.id, q.generated);
    res.sampled.push_back(sample_token(sample_row_, *q.sampling, all.first(all.size() - gen),
                                       all.last(gen), s.eos_token_ids, key));
  }
  res.duration_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::vector<float> CpuExecutor::last_logits(RequestId id) const {
  for (size_t i = 0; i < logit_ids_.size(); ++i)
    if (logit_ids_[i] == id) {
      const auto* row = logits_.data() + i * static_cast<size_t>(w_.spec.vocab_size);
      return {row, row + w_.spec.vocab_size};
    }
  return {};
}

}  // namespace twinfer
