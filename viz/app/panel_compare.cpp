// Compare: two runs side by side (a hardware run and its simulated twin, or policy A vs B): the
// summary metrics with deltas coloured by whether B is better, and overlaid series and CDFs.
// Each run's series is drawn against time since its own start, so runs of different traces or
// clocks still line up.
#include <algorithm>
#include <cmath>

#include "viz/app/panels.h"

namespace twinfer::viz {

namespace {

// A run's per-step series shifted to start at 0 (cached per run).
struct Shifted {
  const RunSlot* run = nullptr;
  std::vector<double> t;
};

const std::vector<double>& shifted_t(const RunSlot& r, Shifted& c) {
  if (c.run != &r) {
    c.run = &r;
    c.t = r.series.t;
    for (double& x : c.t) x -= r.data.t_begin;
  }
  return c.t;
}

void metric_table(const RunSlot& a, const RunSlot& b, float height) {
  const auto rows = compare_summaries(a.data.summary, b.data.summary);
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                ImGuiTableFlags_SizingStretchProp;
  if (!ImGui::BeginTable("cmp", 5, flags, ImVec2(0, height))) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("metric");
  ImGui::TableSetupColumn(("A: " + a.data.label).c_str());
  ImGui::TableSetupColumn(("B: " + b.data.label).c_str());
  ImGui::TableSetupColumn("B - A");
  ImGui::TableSetupColumn("B / A - 1");
  ImGui::TableHeadersRow();
  for (const CompareRow& r : rows) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(r.metric.c_str());
    ImGui::TableNextColumn();
    ImGui::Text("%.4g", r.a);
    ImGui::TableNextColumn();
    ImGui::Text("%.4g", r.b);
    const double rel = r.rel();
    // Green when B improves on A by more than 1%, red when it is worse.
    ImVec4 col(0.8f, 0.8f, 0.8f, 1);
    if (std::isfinite(rel) && std::fabs(rel) > 0.01) {
      const bool better = r.lower_is_better ? rel < 0 : rel > 0;
      col = better ? ImVec4(0.45f, 0.9f, 0.45f, 1) : ImVec4(1, 0.45f, 0.4f, 1);
    }
    ImGui::TableNextColumn();
    ImGui::TextColored(col, "%+.4g", r.delta());
    ImGui::TableNextColumn();
    if (std::isfinite(rel)) ImGui::TextColored(col, "%+.1f%%", rel * 100);
    else ImGui::TextDisabled("-");
  }
  ImGui::EndTable();
}

}  // namespace

void draw_compare(RunSlot& a, RunSlot& b, ViewOptions& v) {
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float left = std::min(520.0f, avail.x * 0.42f);
  ImGui::BeginChild("cmp_table", ImVec2(left, avail.y), false);
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kRunColors[0]), "A: %s", a.data.dir.empty() ? a.data.label.c_str() : a.data.dir.c_str());
  ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kRunColors[1]), "B: %s", b.data.dir.empty() ? b.data.label.c_str() : b.data.dir.c_str());
  metric_table(a, b, ImGui::GetContentRegionAvail().y);
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("cmp_plots", ImVec2(0, avail.y), false);
  static Shifted sa, sb;
  const auto& ta = shifted_t(a, sa);
  const auto& tb = shifted_t(b, sb);
  const double span = std::max(a.data.t_end - a.data.t_begin, b.data.t_end - b.data.t_begin);
  const float w = ImGui::GetContentRegionAvail().x;
  const float h = std::max(110.0f, (avail.y - 16) / 4.0f);
  const float qmax = std::max({a.series.running_max, b.series.running_max, 1.0f});
  plot_lines("running sequences (time since each run's start)", ImVec2(w, h), 0, span, qmax * 1.05f,
             {{&ta, &a.series.running, 0, 1, kRunColors[0], "A"}, {&tb, &b.series.running, 0, 1, kRunColors[1], "B"}},
             "seqs");
  plot_lines("KV used (fraction of each pool)", ImVec2(w, h), 0, span, 1.0f,
             {{&ta, &a.series.kv_used, 0, 1, kRunColors[0], "A"}, {&tb, &b.series.kv_used, 0, 1, kRunColors[1], "B"}},
             "of pool");
  ImGui::Checkbox("log latency axis", &v.metrics.log_x_cdf);
  const float cw = (w - 16) / 3;
  const ImVec2 cs(cw, std::max(100.0f, ImGui::GetContentRegionAvail().y));
  plot_cdf("TTFT", cs, {{&a.series.ttft_ms, kRunColors[0], "A"}, {&b.series.ttft_ms, kRunColors[1], "B"}}, v.metrics.log_x_cdf);
  ImGui::SameLine();
  plot_cdf("TPOT", cs, {{&a.series.tpot_ms, kRunColors[0], "A"}, {&b.series.tpot_ms, kRunColors[1], "B"}}, v.metrics.log_x_cdf);
  ImGui::SameLine();
  plot_cdf("e2e", cs, {{&a.series.e2e_ms, kRunColors[0], "A"}, {&b.series.e2e_ms, kRunColors[1], "B"}}, v.metrics.log_x_cdf);
  ImGui::EndChild();
}

}  // namespace twinfer::viz
