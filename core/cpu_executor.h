// The CPU reference backend: the Llama-family forward pass in fp32 with Eigen, over a paged KV
// cache addressed by the engine's block tables exactly as a GPU paged cache is. Small models
// only (it runs in CI); its logits are checked against Hugging Face transformers.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/cpu_forward.h"
#include "core/executor.h"
#include "core/weights.h"

namespace twinfer {

// Dense forward without paging: logits for every position of `tokens`, [n, vocab] row-major.
// The reference the paged executor is tested against. Token ids must be in the vocab.
std::vector<float> forward_logits(const ModelWeights& w, std::span<const int32_t> tokens);

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(ModelWeights&& weights, int32_t num_gpu_blocks, int32_t num_cpu_blocks,
              int32_t block_size, uint64_t run_seed);

  std::string backend() const override { return "cpu"; }
  bool real_tokens() const override { return true; }
  // Swaps and copy-on-write copies first, then one batched forward over every scheduled row.
  // A sequence with a bad token id, block table or sampling parameter fails alone; failed
  // sequences that were due to sample get -1 in `sampled`, so that vector stays one entry per
  // samples == true sequence, in plan order.
  StepResult execute(const StepPlan& plan) override;

  // Raw logits (before penalties/temperature) of the last step in which `id` sampled; empty if
  // it did not sample in the last step.
  std::vector<float> last_logits(RequestId id) const;
  const ModelWeights& weights() const { return w_; }
  int32_t block_size() const { return block_size_; }

 private:
  ModelWeights w_;
  int32_t num_gpu_blocks_, num_cpu_blocks_, block_size_;
  uint64_t run_seed_;
  // One block holds K (or V) of block_size tokens for every layer: [layers][block_size][kv_dim].
  size_t block_floats_;
  std::vector<float> k_pool_, v_pool_;            // [num_gpu_blocks][block_floats]
  std::vector<float> k_host_, v_host_;            // [num_cpu_blocks][block_floats]
  std::vector<float> staging_;                    // swap sources gathered before writes

  // Per-step state, reused to avoid allocation.
  cpu::Scratch sc_;
  std::vector<int32_t> row_tok_, row_pos_;
  std::vector<uint8_t> ok_;          // [plan.seqs]: passed check_seq
  std::vector<size_t> live_;          // indices into plan.seqs that run this step
  std::vector<int64_t> row_start_;    // first row of each live seq
  std::vector<float> k_ctx_, v_ctx_;  // one sequence's gathered context, [ctx, kv_dim]
  std::vector<float> final_h_, logits_, sample_row_;
  std::vector<RequestId> logit_ids_;  // row i of logits_ belongs to logit_ids_[i]

  // Block ids out of range here are engine bugs (the BlockManager hands them out): logic_error.
  void do_swaps_and_copies(const StepPlan& plan);
  std::string check_seq(const ScheduledSeq& q, int32_t block_size) const;
  float* kv_slot(std::vector<float>& pool, BlockId b, int64_t layer, int64_t slot);
};

}  // namespace twinfer
