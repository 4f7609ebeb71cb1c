#include "viz/app/frame_bench.h"

#include <imgui.h>

#include <algorithm>

namespace twinfer::viz {

void count_draw_data(const ImDrawData* dd, FrameSample& s) {
  s.vertices = s.indices = s.draw_calls = s.draw_lists = 0;
  if (!dd) return;
  s.vertices = dd->TotalVtxCount;
  s.indices = dd->TotalIdxCount;
  s.draw_lists = dd->CmdListsCount;
  for (int i = 0; i < dd->CmdListsCount; ++i) {
    const ImDrawList* l = dd->CmdLists[i];
    for (const ImDrawCmd& c : l->CmdBuffer)
      if (!c.UserCallback && c.ElemCount > 0) ++s.draw_calls;
  }
}

namespace {

struct Stat {
  double p50, p95, max;
};

template <class F>
Stat stat_of(const std::vector<FrameSample>& v, F field) {
  std::vector<double> x;
  x.reserve(v.size());
  for (const FrameSample& s : v) x.push_back(field(s));
  std::sort(x.begin(), x.end());
  // Nearest-rank percentiles: p95 of 100 frames is the 95th smallest.
  auto rank = [&](double q) { return x[std::min(x.size() - 1, static_cast<size_t>(q * x.size() + 0.999999) - 1)]; };
  return {rank(0.5), rank(0.95), x.back()};
}

}  // namespace

void FrameBench::report(std::FILE* out, const std::string& what) const {
  if (samples_.empty()) return;
  std::fprintf(out, "%s, %zu frames\n", what.c_str(), samples_.size());
  std::fprintf(out, "  %-22s %9s %9s %9s\n", "ms per frame", "p50", "p95", "max");
  auto row = [&](const char* name, auto field) {
    const Stat s = stat_of(samples_, field);
    std::fprintf(out, "  %-22s %9.2f %9.2f %9.2f\n", name, s.p50, s.p95, s.max);
  };
  row("app (UI build)", [](const FrameSample& s) { return s.app_ms; });
  row("render (GL, finished)", [](const FrameSample& s) { return s.render_ms; });
  row("swap (present)", [](const FrameSample& s) { return s.swap_ms; });
  row("whole frame", [](const FrameSample& s) { return s.total_ms; });
  const Stat t = stat_of(samples_, [](const FrameSample& s) { return s.total_ms; });
  std::fprintf(out, "  fps: %.1f at the median frame, %.1f at p95\n", 1000.0 / t.p50, 1000.0 / t.p95);
  const Stat vtx = stat_of(samples_, [](const FrameSample& s) { return s.vertices; });
  const Stat idx = stat_of(samples_, [](const FrameSample& s) { return s.indices; });
  const Stat dc = stat_of(samples_, [](const FrameSample& s) { return s.draw_calls; });
  const Stat dls = stat_of(samples_, [](const FrameSample& s) { return s.draw_lists; });
  std::fprintf(out, "  draw data (median): %.0f vertices, %.0f indices (%.0f triangles), %.0f draw calls in %.0f lists\n",
               vtx.p50, idx.p50, idx.p50 / 3, dc.p50, dls.p50);
}

}  // namespace twinfer::viz
