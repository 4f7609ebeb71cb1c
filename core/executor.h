// The one seam between a hardware run and a simulated one. The engine hands the executor a
// StepPlan (what to compute this step); the executor returns how long it took (measured on
// hardware, predicted by the cost model in simulation) and, on real backends, the sampled tokens.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/policy.h"
#include "core/request.h"

namespace twinfer {

struct ScheduledSeq {
  RequestId id = 0;
  int32_t num_new_tokens = 0;  // tokens whose KV is computed this step (1 for a decode)
  int32_t context_before = 0;  // tokens already in the KV cache: positions [0, context_before)
  bool is_prefill = false;     // computing prompt (or recomputed) tokens rather than one decode
  bool samples = false;        // the step reaches the sequence's last token: sample a new one
  // Real backends: every token id of the sequence so far (prompt + generated); null in sim.
  const std::vector<int32_t>* tokens = nullptr;
  std::span<const BlockId> block_table;  // physical blocks, logical order
  const SamplingParams* sampling = nullptr;
  int32_t generated = 0;  // output tokens so far (penalties, min_tokens)

  int32_t context_after() const { return context_before + num_new_tokens; }
};

struct StepPlan {
  int64_t step = 0;
  double start_s = 0.0;
  std::vector<ScheduledSeq> seqs;  // decodes first, then prefill chunks
  int32_t num_prefill_tokens = 0;
  int32_t num_decode_tokens = 0;
  // Static batching pads finished members: they still occupy a batch slot and are computed
  // at the batch's padded context length (cost only; their outputs are discarded).
  int32_t num_padding_seqs = 0;
  int32_t padded_context = 0;
  std::vector<std::pair<BlockId, BlockId>> copies;    // copy-on-write (src, dst), GPU blocks
  std::vector<std::pair<BlockId, BlockId>> swap_out;  // (gpu, cpu)
  std::vector<std::pair<BlockId, BlockId>> swap_in;   // (cpu, gpu)
  int32_t block_size = 16;

  bool empty() const { return seqs.empty() && swap_out.empty() && swap_in.empty(); }
  int32_t num_tokens() const { return num_prefill_tokens + num_decode_tokens; }
};

// What the cost model reads of a StepPlan (sim/cost_model.h), as sums over the scheduled
// sequences: one row of step_shapes.csv, enough to re-cost a hardware step exactly when fitting
// the model to measured runs (`twinfer calibrate --from-runs`). A chunk of n new tokens after c
// cached ones has n*c + n(n+1)/2 causal (query, key) pairs; a decode (n = 1) has c + 1.
struct StepShape {
  int32_t num_seqs = 0;
  int32_t prefill_tokens = 0, decode_tokens = 0;
  int64_t prefill_context = 0, decode_context = 0;  // sums of context_after
  int64_t prefill_pairs = 0, decode_pairs = 0;
  // The longest decode context_after: the decode attention kernel's slowest partition holds
  // min(this, partition size) keys, a latency the sums above cannot show (sim/cost_model.cpp).
  int32_t decode_max_context = 0;
  int32_t sample_rows = 0;
  int32_t padding_seqs = 0, padded_context = 0;  // static batching (StepPlan's fields)
  int32_t swapped_blocks = 0;  // swap_in + swap_out
  int32_t copied_blocks = 0;
  int32_t block_size = 16;

  static StepShape of(const StepPlan& plan) {
    StepShape s;
    s.num_seqs = static_cast<int32_t>(plan.seqs.size());
    for (const ScheduledSeq& q : plan.seqs) {
      const int64_t n = q.num_new_tokens, c = q.context_before;
      const int64_t pairs = n * c + n * (n + 1) / 2;
      if (q.is_prefill) {
        s.prefill_tokens += q.num_new_tokens;
        s.prefill_context += c + n;
        s.prefill_pairs += pairs;
      } else {
        s.decode_tokens += q.num_new_tokens;
        s.decode_context += c + n;
        s.decode_pairs += pairs;
        s.decode_max_context = std::max(s.decode_max_context, static_cast<int32_t>(c + n));
      }
      s.sample_rows += q.samples ? 1 : 0;
    }
    s.padding_seqs = plan.num_padding_seqs;
    s.padded_context = plan.padded_context;
    s.swapped_blocks = static_cast<int32_t>(plan.swap_in.size() + plan.swap_out.size());
    s.copied_blocks = static_cast<int32_t>(plan.copies.size());
    s.block_size = plan.block_size;
    return s;
  }
};

struct StepResult {
  double duration_s = 0.0;
  // One token per ScheduledSeq with samples == true, in plan order (any value, e.g. -1, for a
  // request listed in `failed`). Empty when the backend does not produce tokens (simulation):
  // the workload's output lengths decide.
  std::vector<int32_t> sampled;
  // Requests that failed inside this step (bad sampling parameter, token out of range...):
  // they end alone with this message while the rest of the batch goes on.
  std::vector<std::pair<RequestId, std::string>> failed;
};

// Why `q` cannot run on a real backend this step ("" when it can): token ids present and in the
// vocabulary, block table covering the context with ids in [0, num_gpu_blocks), sampling
// parameters valid. `who` names the backend in messages.
std::string check_scheduled_seq(const ScheduledSeq& q, int32_t plan_block_size, int32_t block_size,
                                int32_t num_gpu_blocks, int64_t vocab, const char* who);

// What the CUDA executor runs before serving, in one place so the simulator's first-use terms
// (sim/cost_model.h, RowHistory) see the same counts as the engine:
// - the decode batch sizes captured as CUDA graphs by default: vLLM's list (1, 2, 4, multiples of
//   8 to 256, of 16 to 512), cut at max_num_seqs, which is captured itself (up to 512);
std::vector<int32_t> default_cudagraph_sizes(int32_t max_num_seqs);
// - the token counts every projection GEMM runs once at (CUDA loads kernels lazily and cuBLAS
//   picks kernels per count): `first` (the first count past the GEMV) to max_tokens, every count
//   below 64, then every 8th below 512, every 32nd below 2048 and every 128th above.
std::vector<int32_t> gemm_warm_counts(int32_t first, int32_t max_tokens);

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::string backend() const = 0;  // "sim", "cpu", "cuda"
  virtual bool real_tokens() const = 0;
  virtual StepResult execute(const StepPlan& plan) = 0;
  // Free text for the end of a run (per-op profile, graph use); empty by default.
  virtual std::string report() const { return ""; }
};

}  // namespace twinfer
