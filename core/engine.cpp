#include "core/engine.h"

#include <algorithm>
#include <cmath>

namespace twinfer {

Engine::Engine(const EngineOptions& opt, Executor& exec, QueuePolicy& queue,
               VictimPolicy& victim, EvictionPolicy* eviction)
    : opt_(opt),
      exec_(exec),
      blocks_(opt.blocks, eviction, opt.record_kv_events ? &rec_.kv : nullptr),
      sched_(opt.sched, seqs_, blocks_, queue, victim) {
  rec_.kv.enabled = opt.record_kv_events;
  rec_.backend = exec.backend();
  rec_.block_size = opt.blocks.block_size;
  rec_.kv_blocks_total = opt.blocks.num_gpu_blocks;
  rec_.cpu_blocks_total = opt.blocks.num_cpu_blocks;
  rec_.kv_capacity_tokens = static_cast<int64_t>(opt.blocks.num_gpu_blocks) * opt.blocks.block_size;
}

const Sequence* Engine::find(RequestId id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &seqs_[static_cast<size_t>(it->second)];
}

void Engine::fail(Sequence& s, std::string why, double t) {
  s.status = SeqStatus::failed;
  ++done_;
  s.error = std::move(why);
  s.times.finished = t;
}

void Engine::add_request(const RequestSpec& r, double now) {
  const auto idx = static_cast<int32_t>(seqs_.size());
  seqs_.emplace_back();
  Sequence& s = seqs_.back();
  s.spec = r;
  s.times.arrival = r.arrival_s;
  if (index_.count(r.id)) {
    // Keep the record, under a fresh id, so nothing is lost; the duplicate fails alone.
    RequestId fresh = -static_cast<RequestId>(idx) - 1;
    s.spec.id = fresh;
    index_[fresh] = idx;
    fail(s, "duplicate request id " + std::to_string(r.id), now);
    return;
  }
  index_[r.id] = idx;
  const bool real = exec_.real_tokens();
  s.num_tokens = r.prompt_len;
  s.max_tokens = r.output_len > 0 ? r.output_len : r.sampling.max_tokens;
  if (real) s.tokens = r.prompt_tokens;
  const int32_t max_len = opt_.sched.max_model_len;
  if (r.prompt_len <= 0)
    return fail(s, "empty prompt (prompt_len " + std::to_string(r.prompt_len) + ")", now);
  if (real && static_cast<int32_t>(r.prompt_tokens.size()) != r.prompt_len)
    return fail(s, "prompt_len " + std::to_string(r.prompt_len) + " but " +
                       std::to_string(r.prompt_tokens.size()) + " prompt token ids",
                now);
  if (r.prompt_len >= max_len)
    return fail(s, "prompt of " + std::to_string(r.prompt_len) +
                       " tokens leaves no room to generate within --max-model-len " +
                       std::to_string(max_len),
                now);
  if (s.max_tokens <= 0)
    return fail(s, "max_tokens must be at least 1, got " + std::to_string(s.max_tokens), now);
  if (real && opt_.vocab_size > 0) {
    for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
      const int32_t t = r.prompt_tokens[i];
      if (t < 0 || t >= opt_.vocab_size)
        return fail(s, "prompt token " + std::to_string(i) + " = " + std::to_string(t) +
                           " is outside the vocabulary [0, " + std::to_string(opt_.vocab_size) + ")",
                    now);
    }
  }
  if (opt_.sched.prefix_caching) s.block_hashes = prompt_block_hashes(s.spec, opt_.blocks.block_size);
  sched_.add(idx);
}

void Engine::schedule(double now, ScheduleOutcome& out) {
  rec_.kv.time = now;
  rec_.kv.step = step_;
  sched_.schedule(step_, now, out);
}

void Engine::on_token(Sequence& s, int32_t token, double t) {
  ++s.generated;
  ++s.num_tokens;
  if (!s.tokens.empty() || exec_.real_tokens()) s.tokens.push_back(token);
  if (std::isnan(s.times.first_token)) {
    s.times.first_token = t;
  } else {
    rec_.itl_s.push_back(static_cast<float>(t - s.last_token_time));
  }
  s.last_token_time = t;
  s.times.last_token = t;
  bool stop = s.generated >= s.max_tokens || s.num_tokens >= opt_.sched.max_model_len;
  if (exec_.real_tokens() && s.generated >= s.spec.sampling.min_tokens) {
    const auto& stops = s.spec.sampling.stop_token_ids;
    stop |= std::find(stops.begin(), stops.end(), token) != stops.end();
    if (!s.spec.sampling.ignore_eos)
      stop |= std::find(opt_.eos_ids.begin(), opt_.eos_ids.end(), token) != opt_.eos_ids.end();
  }
  if (stop) {
    s.status = SeqStatus::finished;
    ++done_;
    s.times.finished = t;
  }
}

void Engine::register_full_blocks(Sequence& s) {
  const int32_t bs = opt_.blocks.block_size;
  const int32_t full = s.num_computed / bs;
  // Real tokens let output blocks join the cache too (a recomputed or forked sequence hits them).
  if (!s.tokens.empty()) {
    while (static_cast<int32_t>(s.block_hashes.size()) < full) {
      const size_t i = s.block_hashes.size();
      const BlockHash parent = i ? s.block_hashes.back() : 0;
      s.block_hashes.push_back(hash_block_tokens(
          parent, std::span<const int32_t>(s.tokens).subspan(i * static_cast<size_t>(bs),
                                                             static_cast<size_t>(bs))));
    }
  }
  const int32_t upto = std::min<int32_t>(full, static_cast<int32_t>(s.block_hashes.size()));
  if (upto <= s.num_cached_blocks) return;
  blocks_.cache_blocks(s.spec.id, static_cast<size_t>(s.num_cached_blocks),
                       std::span<const BlockHash>(s.block_hashes)
                           .subspan(static_cast<size_t>(s.num_cached_blocks),
                                    static_cast<size_t>(upto - s.num_cached_blocks)));
  s.num_cached_blocks = upto;
}

void Engine::commit(const ScheduleOutcome& o, const StepResult& res, double t_end) {
  const StepPlan& plan = o.plan;
  rec_.kv.time = t_end;
  for (const auto& [id, why] : res.failed) {
    auto it = index_.find(id);
    if (it == index_.end()) continue;
    Sequence& s = seqs_[static_cast<size_t>(it->second)];
    if (!s.done()) fail(s, why, t_end);
  }
  const bool real = exec_.real_tokens();
  size_t sampled = 0;
  for (const ScheduledSeq& q : plan.seqs) {
    Sequence& s = seq(q.id);
    if (q.samples && real) ++sampled;
    if (s.done()) continue;  // failed inside the step
    s.num_computed += q.num_new_tokens;
    if (q.samples) {
      if (real && sampled > res.sampled.size()) {
        fail(s, "executor returned " + std::to_string(res.sampled.size()) +
                    " tokens for a step that samples more sequences", t_end);
        continue;
      }
      on_token(s, real ? res.sampled[sampled - 1] : 0, t_end);
    }
    if (opt_.sched.prefix_caching && !s.done()) register_full_blocks(s);
  }
  for (RequestId id : o.failed) {
    Sequence& s = seq(id);
    s.times.finished = t_end;
    ++done_;
  }

  StepRecord r;
  r.step = plan.step;
  r.start_s = plan.start_s;
  r.duration_s = t_end - plan.start_s;
  r.num_prefill_tokens = plan.num_prefill_tokens;
  r.num_decode_tokens = plan.num_decode_tokens;
  for (const auto& q : plan.seqs) (q.is_prefill ? r.num_prefill_seqs : r.num_decode_seqs)++;
  r.shape = StepShape::of(plan);
  r.num_running = static_cast<int32_t>(sched_.num_running());
  r.num_waiting = static_cast<int32_t>(sched_.num_waiting());
  r.num_swapped = static_cast<int32_t>(sched_.num_swapped());
  // Peak while the step runs (blocks are allocated at scheduling and freed at retire below).
  rec_.kv_blocks_peak = std::max(rec_.kv_blocks_peak, blocks_.num_used_blocks());
  r.preempted_begin = static_cast<uint32_t>(rec_.preempted_ids.size());
  rec_.preempted_ids.insert(rec_.preempted_ids.end(), o.preempted.begin(), o.preempted.end());
  r.preempted_end = static_cast<uint32_t>(rec_.preempted_ids.size());
  rec_.preemptions += static_cast<int64_t>(o.preempted.size());
  if (!plan.empty() || !o.failed.empty()) rec_.steps.push_back(r);

  rec_.kv.step = step_;
  sched_.retire(t_end);
  // The row reports blocks after the step, so replaying kv_events.csv up to and including step
  // k reproduces row k's counts exactly (docs/trace-format.md).
  if (!rec_.steps.empty() && rec_.steps.back().step == plan.step) {
    rec_.steps.back().kv_blocks_used = blocks_.num_used_blocks();
    rec_.steps.back().kv_blocks_cached = blocks_.num_cached_blocks();
  }
  ++step_;
}

RunRecord& Engine::finish(double wall_s) {
  rec_.requests.clear();
  rec_.requests.reserve(seqs_.size());
  double first_arrival = std::numeric_limits<double>::infinity();
  double last_done = 0.0;
  for (const Sequence& s : seqs_) {
    RequestRecord q;
    q.id = s.spec.id;
    q.prompt_len = s.spec.prompt_len;
    q.output_len = s.generated;
    q.target_len = s.spec.output_len;
    q.priority = s.spec.priority;
    q.times = s.times;
    q.num_preemptions = s.num_preemptions;
    q.prefix_hit_tokens = std::max(0, s.prefix_hit_tokens);
    q.status = s.status;
    q.error = s.error;
    if (exec_.real_tokens() && s.tokens.size() >= static_cast<size_t>(s.spec.prompt_len))
      q.output_tokens.assign(s.tokens.begin() + s.spec.prompt_len, s.tokens.end());
    first_arrival = std::min(first_arrival, s.spec.arrival_s);
    if (!std::isnan(s.times.finished)) last_done = std::max(last_done, s.times.finished);
    rec_.requests.push_back(std::move(q));
  }
  std::stable_sort(rec_.requests.begin(), rec_.requests.end(),
                   [](const RequestRecord& a, const RequestRecord& b) {
                     return a.times.arrival < b.times.arrival;
                   });
  rec_.duration_s = seqs_.empty() ? 0.0 : std::max(0.0, last_done - first_arrival);
  rec_.prefix_queried_blocks = blocks_.prefix_queries();
  rec_.prefix_hit_blocks = blocks_.prefix_hits();
  rec_.wall_s = wall_s;
  return rec_;
}

}  // namespace twinfer
