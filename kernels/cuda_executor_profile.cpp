// CudaExecutor's measurement side: the TWINFER_ABLATE and TWINFER_L2_PREFETCH switches, per-op
// events (profile_ops), TWINFER_STEP_TIMING's split of graph steps, and the report `twinfer bench`
// prints.
#include <algorithm>
#include <cstdio>
#include <string>

#include "kernels/cuda_executor.h"

#include "core/error.h"

namespace twinfer::cuda {

namespace {

// Bit mask of the comma-separated names in `spec` (empty names skipped); `bit(name)` gives a
// name's bit, or throws naming it.
template <class F>
uint32_t parse_name_list(const char* spec, F&& bit) {
  uint32_t mask = 0;
  if (!spec || !*spec) return 0;
  const std::string all(spec);
  for (size_t pos = 0; pos <= all.size();) {
    const size_t comma = std::min(all.find(',', pos), all.size());
    const std::string name = all.substr(pos, comma - pos);
    pos = comma + 1;
    if (!name.empty()) mask |= bit(name);
  }
  return mask;
}

}  // namespace

// TWINFER_ABLATE=op,op,...: the named ops are not launched at all. Results are then garbage;
// it exists to time what each op costs inside a real (graph-replayed, PDL-overlapped) step,
// which per-op events cannot show. Unknown names are an error.
uint32_t parse_ablate(const char* spec) {
  return parse_name_list(spec, [](const std::string& name) {
    for (int i = 0; i < static_cast<int>(Op::count); ++i)
      if (name == op_name(static_cast<Op>(i))) return 1u << i;
    throw ConfigError("TWINFER_ABLATE: unknown op '" + name + "'");
  });
}

// TWINFER_L2_PREFETCH=o,o_half,next_qkv|off (docs/gpu.md).
uint32_t parse_l2_prefetch(const char* spec) {
  return parse_name_list(spec, [](const std::string& name) -> uint32_t {
    if (name == "o") return kPrefetchO;
    if (name == "o_half") return kPrefetchOHalf;
    if (name == "next_qkv") return kPrefetchNextQkv;
    if (name == "off") return 0;
    throw ConfigError("TWINFER_L2_PREFETCH: unknown '" + name + "' (expected o, o_half, next_qkv or off)");
  });
}

const char* op_name(Op op) {
  static const char* names[] = {"upload", "embed", "norm", "qkv", "rope_kv", "attn_decode",
                                "attn_prefill", "o_proj", "gate_up", "act", "down", "lm_head",
                                "sample"};
  return names[static_cast<int>(op)];
}

void CudaExecutor::mark(Op op) {
  if (!opt_.profile_ops || stream_capturing_) return;
  if (marks_.size() + 1 >= events_.size()) {
    const size_t n = std::max<size_t>(64, 2 * events_.size());
    while (events_.size() < n) {
      cudaEvent_t e;
      TWINFER_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
  }
  TWINFER_CUDA_CHECK(cudaEventRecord(events_[marks_.size()], stream_));
  marks_.push_back(op);
}

void CudaExecutor::collect_marks() {
  if (marks_.empty()) return;
  // The step ends at a last event; each op's time runs to the next mark.
  TWINFER_CUDA_CHECK(cudaEventRecord(events_[marks_.size()], stream_));
  TWINFER_CUDA_CHECK(cudaEventSynchronize(events_[marks_.size()]));
  for (size_t i = 0; i < marks_.size(); ++i) {
    float ms = 0;
    TWINFER_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    prof_[prof_kind_].ms[static_cast<int>(marks_[i])] += ms;
    ++prof_[prof_kind_].calls[static_cast<int>(marks_[i])];
  }
  ++prof_[prof_kind_].steps;
  marks_.clear();
}

std::string CudaExecutor::report() const {
  char buf[256];
  std::string out;
  std::snprintf(buf, sizeof buf, "cuda steps: %lld replayed from graphs (%lld padding rows), %lld eager\n",
                static_cast<long long>(stats_.graph_steps), static_cast<long long>(stats_.padded_rows),
                static_cast<long long>(stats_.eager_steps));
  out += buf;
  if (stats_.timed_steps > 0) {
    const double n = static_cast<double>(stats_.timed_steps);
    std::snprintf(buf, sizeof buf,
                  "graph steps, mean per step: %.4f ms wall in execute, GPU %.4f ms uploads, %.4f ms graph, "
                  "%.4f ms sampling (incl. host gap)\n",
                  stats_.wall_ms / n, stats_.upload_ms / n, stats_.graph_ms / n, stats_.sample_ms / n);
    out += buf;
  }
  for (int kind = 0; kind < 2; ++kind) {
    const OpProfile& p = prof_[kind];
    if (p.steps == 0) continue;
    double total = 0;
    for (double v : p.ms) total += v;
    std::snprintf(buf, sizeof buf, "per-op device time, %s steps: %lld profiled, %.1f ms in all, %.3f ms/step\n",
                  kind == 0 ? "decode-only" : "prefill-carrying", static_cast<long long>(p.steps), total,
                  total / p.steps);
    out += buf;
    for (int i = 0; i < static_cast<int>(Op::count); ++i) {
      if (p.calls[i] == 0) continue;
      std::snprintf(buf, sizeof buf, "  %-14s %10.3f ms %6.1f%%  %8.3f ms/step\n", op_name(static_cast<Op>(i)),
                    p.ms[i], 100.0 * p.ms[i] / total, p.ms[i] / p.steps);
      out += buf;
    }
  }
  return out;
}

void CudaExecutor::collect_step_timing(double wall_ms) {
  TWINFER_CUDA_CHECK(cudaEventRecord(step_ev_[3], stream_));
  TWINFER_CUDA_CHECK(cudaEventSynchronize(step_ev_[3]));
  float ms[3] = {};
  for (int i = 0; i < 3; ++i) TWINFER_CUDA_CHECK(cudaEventElapsedTime(&ms[i], step_ev_[i], step_ev_[i + 1]));
  stats_.upload_ms += ms[0];
  stats_.graph_ms += ms[1];
  stats_.sample_ms += ms[2];
  stats_.wall_ms += wall_ms;
  ++stats_.timed_steps;
}

}  // namespace twinfer::cuda
