#include "core/scheduler.h"

#include <algorithm>
#include <cmath>

namespace twinfer {

Scheduler::Scheduler(SchedulerConfig cfg, std::deque<Sequence>& seqs, BlockManager& blocks,
                     QueuePolicy& queue, VictimPolicy& victim)
    : cfg_(cfg), seqs_(seqs), blocks_(blocks), queue_(queue), victim_(victim) {}

RequestView Scheduler::view(const Sequence& s, double now) const {
  RequestView v;
  v.id = s.spec.id;
  v.arrival_s = s.spec.arrival_s;
  v.waiting_s = now - s.spec.arrival_s;
  v.prompt_len = s.spec.prompt_len;
  v.generated = s.generated;
  v.output_len = s.spec.output_len;
  v.max_tokens = s.max_tokens;
  v.priority = s.spec.priority;
  v.num_preemptions = s.num_preemptions;
  v.num_blocks = s.num_blocks;
  if (queue_.needs_prefix_hits() && s.status == SeqStatus::waiting)
    v.prefix_hit_blocks = blocks_.count_prefix_hits(s.block_hashes);
  return v;
}

namespace {
struct WaitingOrder {
  const std::deque<Sequence>* seqs;
  bool operator()(int32_t a, int32_t b) const {
    const Sequence& x = (*seqs)[static_cast<size_t>(a)];
    const Sequence& y = (*seqs)[static_cast<size_t>(b)];
    if (x.queue_key != y.queue_key) return x.queue_key < y.queue_key;
    if (x.spec.arrival_s != y.spec.arrival_s) return x.spec.arrival_s < y.spec.arrival_s;
    return x.spec.id < y.spec.id;
  }
};
}  // namespace

void Scheduler::add(int32_t idx) {
  Sequence& s = seqs_[static_cast<size_t>(idx)];
  s.status = SeqStatus::waiting;
  if (queue_.time_dependent() || !waiting_sorted_) {
    waiting_.push_back(idx);
    waiting_sorted_ = false;
    return;
  }
  // Keys that don't change while a request waits are computed once; a binary insertion keeps
  // the queue ordered without re-sorting thousands of waiting requests every step.
  s.queue_key = queue_.key(view(s, s.spec.arrival_s), s.spec.arrival_s);
  auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), idx, WaitingOrder{&seqs_});
  waiting_.insert(pos, idx);
}

void Scheduler::sort_waiting(double now) {
  if (waiting_sorted_ && !queue_.time_dependent()) return;
  for (int32_t idx : waiting_) {
    Sequence& s = seqs_[static_cast<size_t>(idx)];
    s.queue_key = queue_.key(view(s, now), now);
  }
  std::sort(waiting_.begin(), waiting_.end(), WaitingOrder{&seqs_});
  waiting_sorted_ = true;
}

void Scheduler::push_seq(ScheduleOutcome& out, int32_t idx, int32_t n) {
  Sequence& s = seqs_[static_cast<size_t>(idx)];
  ScheduledSeq q;
  q.id = s.spec.id;
  q.num_new_tokens = n;
  q.context_before = s.num_computed;
  q.is_prefill = !s.is_decode();
  q.samples = s.num_computed + n == s.num_tokens;
  q.tokens = s.tokens.empty() ? nullptr : &s.tokens;
  q.block_table = blocks_.block_table(s.spec.id);
  q.sampling = &s.spec.sampling;
  q.generated = s.generated;
  (q.is_prefill ? out.plan.num_prefill_tokens : out.plan.num_decode_tokens) += n;
  out.plan.seqs.push_back(q);
  scheduled_[static_cast<size_t>(idx)] = 1;
  s.num_blocks = static_cast<int32_t>(q.block_table.size());
}

void Scheduler::preempt(ScheduleOutcome& out, int32_t idx) {
  Sequence& s = seqs_[static_cast<size_t>(idx)];
  running_.erase(std::find(running_.begin(), running_.end(), idx));
  s.in_static_batch = false;
  ++s.num_preemptions;
  out.preempted.push_back(s.spec.id);
  if (cfg_.swap_preemption && blocks_.can_swap_out(s.spec.id)) {
    auto pairs = blocks_.swap_out(s.spec.id);
    out.plan.swap_out.insert(out.plan.swap_out.end(), pairs.begin(), pairs.end());
    s.status = SeqStatus::swapped;
    swapped_.push_back(idx);
    return;
  }
  // Recompute: drop the KV; the request re-enters the queue and prefills prompt + output again.
  blocks_.free(s.spec.id);
  s.num_computed = 0;
  s.num_cached_blocks = 0;
  s.num_blocks = 0;
  add(idx);
}

void Scheduler::unschedule(ScheduleOutcome& out, int32_t idx) {
  const RequestId id = seqs_[static_cast<size_t>(idx)].spec.id;
  auto& seqs = out.plan.seqs;
  auto it = std::find_if(seqs.begin(), seqs.end(), [&](const ScheduledSeq& q) { return q.id == id; });
  if (it == seqs.end()) return;
  (it->is_prefill ? out.plan.num_prefill_tokens : out.plan.num_decode_tokens) -= it->num_new_tokens;
  budget_ += it->num_new_tokens;
  seqs.erase(it);
  scheduled_[static_cast<size_t>(idx)] = 0;
}

bool Scheduler::reserve_or_preempt(ScheduleOutcome& out, int32_t idx, int64_t need_tokens,
                                   double now) {
  const RequestId id = seqs_[static_cast<size_t>(idx)].spec.id;
  while (!blocks_.can_allocate(id, need_tokens)) {
    // Every running request is a candidate, including ones already placed in this step (they
    // are taken back out of the plan), so the victim policy alone decides, as in vLLM v1.
    cand_.clear();
    views_.clear();
    for (int32_t r : running_) {
      const Sequence& s = seqs_[static_cast<size_t>(r)];
      if (s.done()) continue;  // static-batch padding holds no claim worth preempting for
      cand_.push_back(r);
      views_.push_back(view(s, now));
    }
    if (cand_.empty()) return false;
    size_t k = victim_.choose(views_, now);
    if (k >= cand_.size()) k = cand_.size() - 1;  // a policy out of range picks the last
    const int32_t v = cand_[k];
    if (scheduled_[static_cast<size_t>(v)]) unschedule(out, v);
    preempt(out, v);
    if (v == idx) return false;
  }
  blocks_.allocate(id, need_tokens);
  return true;
}

void Scheduler::schedule_running(ScheduleOutcome& out, bool decodes,
                                 double now) {
  // Iterate a snapshot: preemption removes entries from running_.
  order_.assign(running_.begin(), running_.end());
  for (int32_t idx : order_) {
    if (budget_ <= 0) break;
    Sequence& s = seqs_[static_cast<size_t>(idx)];
    if (s.status != SeqStatus::running || s.done() || scheduled_[static_cast<size_t>(idx)]) continue;
    if (s.is_decode() != decodes) continue;
    int32_t n = s.num_tokens - s.num_computed;
    if (n <= 0) continue;
    if (n > budget_) {
      if (!cfg_.chunked_prefill && !cfg_.static_batching) continue;
      n = budget_;
    }
    if (!reserve_or_preempt(out, idx, static_cast<int64_t>(s.num_computed) + n, now)) continue;
    push_seq(out, idx, n);
    budget_ -= n;
  }
}

void Scheduler::schedule_swapped(ScheduleOutcome& out) {
  while (!swapped_.empty()) {
    const int32_t idx = swapped_.front();
    Sequence& s = seqs_[static_cast<size_t>(idx)];
    if (static_cast<int32_t>(running_.size()) >= cfg_.max_num_seqs) break;
    const int32_t n = s.num_tokens - s.num_computed;
    if (n > budget_) break;
    const int32_t held = blocks_.blocks_for_tokens(s.num_computed);
    const int32_t extra = std::max(0, blocks_.blocks_for_tokens(s.num_computed + n) - held);
    if (!blocks_.can_swap_in(s.spec.id, extra + cfg_.watermark_blocks)) break;
    auto pairs = blocks_.swap_in(s.spec.id);
    out.plan.swap_in.insert(out.plan.swap_in.end(), pairs.begin(), pairs.end());
    swapped_.erase(swapped_.begin());
    s.status = SeqStatus::running;
    running_.push_back(idx);
    blocks_.allocate(s.spec.id, static_cast<int64_t>(s.num_computed) + n);
    push_seq(out, idx, n);
    budget_ -= n;
  }
}

void Scheduler::schedule_waiting(ScheduleOutcome& out, double now) {
  if (waiting_.empty()) return;
  sort_waiting(now);
  const int32_t bs = blocks_.block_size();
  size_t admitted = 0;
  for (; admitted < waiting_.size(); ++admitted) {
    const int32_t idx = waiting_[admitted];
    Sequence& s = seqs_[static_cast<size_t>(idx)];
    if (static_cast<int32_t>(running_.size()) >= cfg_.max_num_seqs || budget_ <= 0) break;
    int32_t hits = 0;
    if (cfg_.prefix_caching && !s.block_hashes.empty()) {
      hits = blocks_.count_prefix_hits(s.block_hashes);
      // At least one token must be computed to produce logits for the next token.
      hits = std::min(hits, (s.num_tokens - 1) / bs);
    }
    const int32_t computed = hits * bs;
    int32_t n = s.num_tokens - computed;
    if (n > budget_) {
      // Without chunking a prompt runs whole or waits (head-of-line, as vLLM's FCFS).
      if (!cfg_.chunked_prefill && !cfg_.static_batching) break;
      n = budget_;
    }
    const int32_t reserve = running_.empty() ? 0 : cfg_.watermark_blocks;
    std::span<const BlockHash> hit_hashes(s.block_hashes.data(), static_cast<size_t>(hits));
    if (!blocks_.can_allocate(s.spec.id, computed + n, hit_hashes, reserve)) break;
    // Every full block of the sequence was looked up, not only the leading hits.
    const int32_t got = blocks_.allocate(s.spec.id, computed + n, hit_hashes,
                                         static_cast<int32_t>(s.block_hashes.size()));
    s.num_computed = got;
    if (s.prefix_hit_tokens < 0) s.prefix_hit_tokens = got;
    n = s.num_tokens - got;
    if (n > budget_) n = budget_;
    s.status = SeqStatus::running;
    s.in_static_batch = cfg_.static_batching;
    if (std::isnan(s.times.first_scheduled)) s.times.first_scheduled = now;
    running_.push_back(idx);
    push_seq(out, idx, n);
    budget_ -= n;
  }
  waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(admitted));
}

void Scheduler::fail_unservable(ScheduleOutcome& out) {
  // Nothing runs and the head of the queue still cannot start: it never will (it needs more
  // blocks than the pool holds). Fail it alone so the rest of the queue proceeds.
  if (!out.plan.empty() || !running_.empty() || !swapped_.empty() || waiting_.empty()) return;
  const int32_t idx = waiting_.front();
  waiting_.erase(waiting_.begin());
  Sequence& s = seqs_[static_cast<size_t>(idx)];
  s.status = SeqStatus::failed;
  s.error = "needs " + std::to_string(blocks_.blocks_for_tokens(s.num_tokens)) +
            " KV blocks for " + std::to_string(s.num_tokens) + " tokens but the pool has " +
            std::to_string(blocks_.num_gpu_blocks());
  out.failed.push_back(s.spec.id);
}

void Scheduler::schedule(int64_t step, double now, ScheduleOutcome& out) {
  StepPlan& p = out.plan;
  p.seqs.clear();
  p.copies.clear();
  p.swap_out.clear();
  p.swap_in.clear();
  p.num_prefill_tokens = p.num_decode_tokens = p.num_padding_seqs = p.padded_context = 0;
  out.preempted.clear();
  out.failed.clear();
  out.plan.step = step;
  out.plan.start_s = now;
  out.plan.block_size = blocks_.block_size();
  if (scheduled_.size() < seqs_.size()) scheduled_.resize(seqs_.size(), 0);
  blocks_.set_time(now);
  budget_ = cfg_.max_num_batched_tokens;

  if (cfg_.static_batching) {
    if (running_.empty()) {
      schedule_waiting(out, now);
    } else {
      bool any_prefill = false;
      for (int32_t idx : running_) {
        const Sequence& s = seqs_[static_cast<size_t>(idx)];
        any_prefill |= !s.done() && !s.is_decode();
      }
      schedule_running(out, /*decodes=*/!any_prefill, now);
      if (!out.plan.seqs.empty() && !any_prefill) {
        // Padding: finished members still occupy their batch row at the padded length.
        for (int32_t idx : running_) {
          const Sequence& s = seqs_[static_cast<size_t>(idx)];
          if (s.done()) ++out.plan.num_padding_seqs;
          out.plan.padded_context = std::max(out.plan.padded_context, s.num_tokens);
        }
      }
    }
  } else if (cfg_.chunked_prefill) {
    schedule_running(out, /*decodes=*/true, now);
    schedule_running(out, /*decodes=*/false, now);
    if (out.preempted.empty()) schedule_swapped(out);
    if (out.preempted.empty() && swapped_.empty()) schedule_waiting(out, now);
  } else {
    if (swapped_.empty()) schedule_waiting(out, now);
    if (out.plan.seqs.empty()) {
      schedule_running(out, /*decodes=*/true, now);
      if (out.preempted.empty()) schedule_swapped(out);
    }
  }
  fail_unservable(out);

  std::stable_partition(out.plan.seqs.begin(), out.plan.seqs.end(),
                        [](const ScheduledSeq& q) { return !q.is_prefill; });
  // Every scheduled sequence ends the step in running_, so this clears all flags.
  for (int32_t idx : running_) scheduled_[static_cast<size_t>(idx)] = 0;
}

void Scheduler::retire(double) {
  if (cfg_.static_batching) {
    for (int32_t idx : running_)
      if (!seqs_[static_cast<size_t>(idx)].done()) return;
    for (int32_t idx : running_) {
      Sequence& s = seqs_[static_cast<size_t>(idx)];
      blocks_.free(s.spec.id);
      s.num_blocks = 0;
      s.in_static_batch = false;
    }
    running_.clear();
    return;
  }
  size_t w = 0;
  for (size_t r = 0; r < running_.size(); ++r) {
    Sequence& s = seqs_[static_cast<size_t>(running_[r])];
    if (s.done()) {
      blocks_.free(s.spec.id);
      s.num_blocks = 0;
    } else {
      running_[w++] = running_[r];
    }
  }
  running_.resize(w);
}

}  // namespace twinfer
