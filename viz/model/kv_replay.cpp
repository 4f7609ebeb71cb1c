#include "viz/model/kv_replay.h"

#include <algorithm>
#include <cstring>

namespace twinfer::viz {

namespace {

// Rows of events whose seq is not a request of the run (should not happen) get no owner.
int32_t owner_row(const RunData& d, RequestId seq) { return seq < 0 ? -1 : d.row_of(seq); }

}  // namespace

KvReplay::KvReplay(const RunData& d, size_t budget_bytes, size_t min_interval) : d_(d) {
  gpu_.assign(static_cast<size_t>(std::max(0, d.kv_blocks_total)), BlockCell{});
  host_.assign(static_cast<size_t>(std::max(0, d.cpu_blocks_total)), HostCell{});
  recount();
  const size_t total = d.kv.events.size();
  const size_t bytes = gpu_.size() * sizeof(BlockCell) + host_.size() * sizeof(HostCell) + 1;
  const size_t max_ck = std::max<size_t>(1, budget_bytes / bytes);
  interval_ = std::max<size_t>({min_interval, (total + max_ck - 1) / max_ck, 1});

  // One pass: checkpoint, apply, and compare with steps.csv. A step's row reports the blocks
  // after the step, once finished requests have released theirs (docs/trace-format.md), so
  // row k is compared just before the first event of a later step.
  size_t step_row = 0;
  auto compare = [&](const StepRow& s) {
    const KvCounts c = counts();
    if ((c.used + c.shared == s.kv_used && c.cached == s.kv_cached) || mismatches_.size() >= 5)
      return;
    mismatches_.push_back("step " + std::to_string(s.step) + ": replay has " +
                          std::to_string(c.used + c.shared) + " used / " +
                          std::to_string(c.cached) + " cached blocks, steps.csv says " +
                          std::to_string(s.kv_used) + " / " + std::to_string(s.kv_cached));
  };
  auto check_before = [&](const KvEvent* e) {
    for (; step_row < d.steps.size(); ++step_row) {
      const StepRow& s = d.steps[step_row];
      const bool passed = !e || s.step < e->step;
      if (!passed) break;
      compare(s);
    }
  };
  const bool check = !d.steps.empty() && total > 0;
  size_t i = 0;
  for (; i < total; ++i) {
    if (i % interval_ == 0) {
      ck_gpu_.insert(ck_gpu_.end(), gpu_.begin(), gpu_.end());
      ck_host_.insert(ck_host_.end(), host_.begin(), host_.end());
    }
    if (check) check_before(&d.kv.events[i]);
    std::string why = apply(i);
    if (!why.empty()) {
      const KvEvent& e = d.kv.events[i];
      error_ = "kv_events.csv:" + std::to_string(i + 2) + ": " + kv_event_name(e.type) +
               " of seq " + std::to_string(e.seq) + " at step " + std::to_string(e.step) + ": " +
               why + "; the block map stops before this event";
      break;
    }
  }
  n_events_ = i;
  if (check && error_.empty()) check_before(nullptr);
  if (!error_.empty()) {
    // The bad event may have been applied halfway: rebuild the state from its checkpoint.
    restore(n_events_ / interval_);
    for (size_t k = n_events_ / interval_ * interval_; k < n_events_; ++k) apply(k);
  } else if (n_events_ % interval_ == 0 && n_events_ > 0) {
    // A checkpoint at the very end makes seeking to the last event a plain copy.
    ck_gpu_.insert(ck_gpu_.end(), gpu_.begin(), gpu_.end());
    ck_host_.insert(ck_host_.end(), host_.begin(), host_.end());
  }
  applied_ = n_events_;
}

std::string KvReplay::apply(size_t i) {
  const KvEvent& e = d_.kv.events[i];
  const int32_t* B = d_.kv.ids.data() + e.b0;
  const int32_t* B2 = d_.kv.ids.data() + e.b1;
  const size_t n = e.b1 - e.b0;
  const int32_t who = owner_row(d_, e.seq);
  // Every cell change goes through `change` so the per-state counts stay exact.
  auto change = [&](BlockCell& c, auto&& f) {
    --state_count_[static_cast<int>(block_state(c))];
    f(c);
    ++state_count_[static_cast<int>(block_state(c))];
  };
  auto release = [&](int32_t b) -> std::string {
    BlockCell& c = gpu_[static_cast<size_t>(b)];
    if (c.ref <= 0) return "block " + std::to_string(b) + " released with ref count 0";
    change(c, [](BlockCell& x) { --x.ref; });
    return {};
  };
  auto fresh = [&](int32_t b) -> std::string {
    BlockCell& c = gpu_[static_cast<size_t>(b)];
    if (c.ref != 0 || c.hashed)
      return "block " + std::to_string(b) + " handed out while " +
             (c.ref ? "in use (ref " + std::to_string(c.ref) + ")" : std::string("cached"));
    change(c, [&](BlockCell& x) {
      x.ref = 1;
      x.owner = who;
    });
    return {};
  };
  std::string why;
  switch (e.type) {
    case KvEventType::allocate:
      for (size_t k = 0; k < n && why.empty(); ++k) why = fresh(B[k]);
      break;
    case KvEventType::share:
      for (size_t k = 0; k < n; ++k) {
        BlockCell& c = gpu_[static_cast<size_t>(B[k])];
        if (c.ref == 0 && !c.hashed) return "block " + std::to_string(B[k]) + " shared while free";
        change(c, [&](BlockCell& x) {
          if (x.ref == 0) x.owner = who;
          ++x.ref;
        });
      }
      break;
    case KvEventType::free:
      for (size_t k = 0; k < n && why.empty(); ++k) why = release(B[k]);
      break;
    case KvEventType::cache:
      for (size_t k = 0; k < n; ++k) {
        BlockCell& c = gpu_[static_cast<size_t>(B[k])];
        if (c.ref <= 0) return "block " + std::to_string(B[k]) + " cached while unreferenced";
        change(c, [](BlockCell& x) { x.hashed = 1; });
      }
      break;
    case KvEventType::evict:
      for (size_t k = 0; k < n; ++k) {
        BlockCell& c = gpu_[static_cast<size_t>(B[k])];
        if (c.ref != 0 || !c.hashed) return "block " + std::to_string(B[k]) + " evicted but not cached";
        change(c, [](BlockCell& x) { x.hashed = 0; });
      }
      break;
    case KvEventType::cow:
      for (size_t k = 0; k < n && why.empty(); ++k) {
        why = release(B[k]);
        if (why.empty()) why = fresh(B2[k]);
      }
      break;
    case KvEventType::fork:
      for (size_t k = 0; k < n; ++k) {
        BlockCell& c = gpu_[static_cast<size_t>(B[k])];
        if (c.ref <= 0) return "block " + std::to_string(B[k]) + " forked while unreferenced";
        change(c, [](BlockCell& x) { ++x.ref; });
      }
      break;
    case KvEventType::swap_out:
      for (size_t k = 0; k < n && why.empty(); ++k) {
        HostCell& h = host_[static_cast<size_t>(B2[k])];
        if (h.owner >= 0) return "host block " + std::to_string(B2[k]) + " already holds a sequence";
        h.owner = who < 0 ? -2 : who;
        ++host_swapped_;
        why = release(B[k]);
      }
      break;
    case KvEventType::swap_in:
      for (size_t k = 0; k < n && why.empty(); ++k) {
        HostCell& h = host_[static_cast<size_t>(B2[k])];
        if (h.owner == -1) return "host block " + std::to_string(B2[k]) + " swapped in but free";
        h.owner = -1;
        --host_swapped_;
        why = fresh(B[k]);
      }
      break;
  }
  return why;
}

void KvReplay::restore(size_t k) {
  std::memcpy(gpu_.data(), ck_gpu_.data() + k * gpu_.size(), gpu_.size() * sizeof(BlockCell));
  std::memcpy(host_.data(), ck_host_.data() + k * host_.size(), host_.size() * sizeof(HostCell));
  recount();
}

void KvReplay::recount() {
  for (int32_t& n : state_count_) n = 0;
  for (const BlockCell& b : gpu_) ++state_count_[static_cast<int>(block_state(b))];
  host_swapped_ = 0;
  for (const HostCell& h : host_) host_swapped_ += h.owner != -1;
}

void KvReplay::seek(size_t n) {
  n = std::min(n, n_events_);
  if (n == applied_) return;
  // Forward within the same checkpoint segment: keep going from here.
  if (n < applied_ || n / interval_ != applied_ / interval_) {
    const size_t k = n / interval_;
    restore(k);
    applied_ = k * interval_;
  }
  for (; applied_ < n; ++applied_) apply(applied_);
}

size_t KvReplay::events_until(double t) const {
  const auto& ev = d_.kv.events;
  auto it = std::partition_point(ev.begin(), ev.begin() + static_cast<std::ptrdiff_t>(n_events_),
                                 [&](const KvEvent& e) { return e.time <= t; });
  return static_cast<size_t>(it - ev.begin());
}

KvCounts KvReplay::counts() const {
  KvCounts c;
  c.free = state_count_[static_cast<int>(BlockState::free)];
  c.cached = state_count_[static_cast<int>(BlockState::cached)];
  c.used = state_count_[static_cast<int>(BlockState::used)];
  c.shared = state_count_[static_cast<int>(BlockState::shared)];
  c.host_swapped = host_swapped_;
  return c;
}

BlockTable KvReplay::table_at(int32_t row, size_t n) const {
  BlockTable t;
  if (row < 0 || static_cast<size_t>(row) + 1 >= d_.seq_event_begin.size()) return t;
  n = std::min(n, n_events_);
  const uint32_t b = d_.seq_event_begin[static_cast<size_t>(row)];
  const uint32_t e = d_.seq_event_begin[static_cast<size_t>(row) + 1];
  for (uint32_t k = b; k < e && d_.seq_events[k] < n; ++k) {
    const KvEvent& ev = d_.kv.events[d_.seq_events[k]];
    const int32_t* B = d_.kv.ids.data() + ev.b0;
    const int32_t* B2 = d_.kv.ids.data() + ev.b1;
    const size_t m = ev.b1 - ev.b0;
    switch (ev.type) {
      case KvEventType::allocate:
      case KvEventType::share:
        t.gpu.insert(t.gpu.end(), B, B + m);
        break;
      case KvEventType::free:
        for (size_t j = 0; j < m; ++j) {
          auto it = std::find(t.gpu.begin(), t.gpu.end(), B[j]);
          if (it != t.gpu.end()) t.gpu.erase(it);
        }
        break;
      case KvEventType::cow:
        for (size_t j = 0; j < m; ++j)
          std::replace(t.gpu.begin(), t.gpu.end(), B[j], B2[j]);
        break;
      case KvEventType::fork:
        t.gpu.assign(B, B + m);
        break;
      case KvEventType::swap_out:
        t.host.assign(B2, B2 + m);
        t.gpu.clear();
        break;
      case KvEventType::swap_in:
        t.gpu.assign(B, B + m);
        t.host.clear();
        break;
      case KvEventType::cache:
      case KvEventType::evict:
        break;
    }
  }
  return t;
}

}  // namespace twinfer::viz
