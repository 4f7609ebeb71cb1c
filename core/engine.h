// The engine: sequences, scheduler, block manager and an executor. One step is three calls:
// schedule (what to compute), execute (the executor computes or predicts it), commit (advance
// sequences, sample outcomes, record metrics). Nothing here knows which executor it drives.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/block_manager.h"
#include "core/executor.h"
#include "core/run_record.h"
#include "core/scheduler.h"
#include "core/sequence.h"

namespace twinfer {

struct EngineOptions {
  SchedulerConfig sched;
  BlockManagerConfig blocks;
  uint64_t seed = 0;
  bool record_kv_events = true;
  std::vector<int64_t> eos_ids;  // real backends: tokens that end generation
  int64_t vocab_size = 0;        // real backends: prompt ids must lie below it
};

class Engine {
 public:
  Engine(const EngineOptions& opt, Executor& exec, QueuePolicy& queue, VictimPolicy& victim,
         EvictionPolicy* eviction);

  // Enqueues a request; one that can never run (empty, longer than max-model-len, needs more
  // blocks than the pool, out-of-vocabulary ids) fails alone with a message.
  void add_request(const RequestSpec& r, double now);
  bool has_work() const { return sched_.has_work(); }

  void schedule(double now, ScheduleOutcome& out);
  StepResult execute(const StepPlan& plan) { return exec_.execute(plan); }
  void commit(const ScheduleOutcome& o, const StepResult& res, double t_end);

  // Closes the record: per-request rows, totals. Call once after the last step.
  RunRecord& finish(double wall_s);
  RunRecord& record() { return rec_; }
  const BlockManager& blocks() const { return blocks_; }
  const Sequence* find(RequestId id) const;
  int64_t steps() const { return step_; }
  size_t num_done() const { return done_; }  // finished or failed

 private:
  EngineOptions opt_;
  Executor& exec_;
  RunRecord rec_;
  BlockManager blocks_;
  std::deque<Sequence> seqs_;  // deque: plans hold pointers into sequences across arrivals
  std::unordered_map<RequestId, int32_t> index_;
  Scheduler sched_;
  int64_t step_ = 0;
  size_t done_ = 0;

  Sequence& seq(RequestId id) { return seqs_[static_cast<size_t>(index_.at(id))]; }
  void on_token(Sequence& s, int32_t token, double t);
  void fail(Sequence& s, std::string why, double t);
  void register_full_blocks(Sequence& s);
};

}  // namespace twinfer
