// Iteration-level scheduler (continuous batching, as vLLM): each step picks which sequences
// compute how many tokens under --max-num-batched-tokens and --max-num-seqs, admits waiting
// requests in policy order, and preempts (recompute or swap) when KV blocks run out.
// With chunked prefill a step mixes decodes (first) and prefill chunks; without it a step is
// either all prefills (new prompts take priority, as vLLM's default scheduler) or all decodes.
// --batching static admits a batch only when the previous one has finished entirely.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "core/block_manager.h"
#include "core/executor.h"
#include "core/policy.h"
#include "core/sequence.h"

namespace twinfer {

struct SchedulerConfig {
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  int32_t max_model_len = 8192;
  bool chunked_prefill = false;
  bool swap_preemption = false;  // else recompute
  bool static_batching = false;
  bool prefix_caching = false;
  // Blocks kept free when admitting new prompts, so running decodes don't immediately preempt
  // (vLLM's 1% watermark).
  int32_t watermark_blocks = 0;
};

struct ScheduleOutcome {
  StepPlan plan;
  std::vector<RequestId> preempted;
  std::vector<RequestId> failed;  // requests the scheduler had to give up on (never fit)
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig cfg, std::deque<Sequence>& seqs, BlockManager& blocks,
            QueuePolicy& queue, VictimPolicy& victim);

  void add(int32_t seq_index);  // a newly arrived (waiting) sequence
  // Fills `out` (cleared first; its buffers are reused across steps to avoid allocation).
  void schedule(int64_t step, double now, ScheduleOutcome& out);
  // After commit: drop finished/failed sequences from the running queue, release their blocks
  // (static batching: when the whole batch is done).
  void retire(double now);

  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  size_t num_swapped() const { return swapped_.size(); }
  bool has_work() const { return !waiting_.empty() || !running_.empty() || !swapped_.empty(); }

 private:
  SchedulerConfig cfg_;
  std::deque<Sequence>& seqs_;
  BlockManager& blocks_;
  QueuePolicy& queue_;
  VictimPolicy& victim_;

  std::vector<int32_t> waiting_;  // kept sorted by (key, arrival, id) lazily
  std::vector<int32_t> running_;  // admission order
  std::vector<int32_t> swapped_;  // swap-out order (FIFO)
  bool waiting_sorted_ = true;
  int32_t budget_ = 0;              // tokens left in the step being scheduled
  std::vector<uint8_t> scheduled_;  // [seqs]: scheduled in the current step
  std::vector<RequestView> views_;  // scratch for the victim policy
  std::vector<int32_t> cand_;       // scratch: victim candidates
  std::vector<int32_t> order_;      // scratch: running snapshot

  RequestView view(const Sequence& s, double now) const;
  void sort_waiting(double now);
  void push_seq(ScheduleOutcome& out, int32_t idx, int32_t n);
  // Makes room for `need_tokens` total tokens of seq idx, preempting running sequences chosen
  // by the victim policy. Returns false if idx itself had to be preempted.
  bool reserve_or_preempt(ScheduleOutcome& out, int32_t idx, int64_t need_tokens, double now);
  void preempt(ScheduleOutcome& out, int32_t idx);
  void unschedule(ScheduleOutcome& out, int32_t idx);  // take a placed sequence back out
  void schedule_running(ScheduleOutcome& out, bool decodes, double now);
  void schedule_swapped(ScheduleOutcome& out);
  void schedule_waiting(ScheduleOutcome& out, double now);
  void fail_unservable(ScheduleOutcome& out);
};

}  // namespace twinfer
