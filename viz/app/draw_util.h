// Drawing helpers shared by the panels: colours, time labels, axes and line/CDF plots drawn
// with ImDrawList (Debian's ImGui 1.86 has no plotting library), and the bundle of model objects
// a panel draws from.
#pragma once
#include <imgui.h>

#include <memory>
#include <string>
#include <vector>

#include "viz/model/kv_replay.h"
#include "viz/model/run_data.h"
#include "viz/model/series.h"

namespace twinfer::viz {

// A loaded run with what the panels derive from it. Heap-allocated and never moved: the replay
// holds a reference to `data`.
struct RunSlot {
  RunData data;
  std::unique_ptr<KvReplay> replay;  // null when the run has no KV events
  RunSeries series;
  int32_t max_step_tokens = 1;  // largest prefill + decode tokens of one step (bar scale)
  // Per block of kStepBlock consecutive steps: largest prefill and decode tokens and whether any
  // step preempted, so folding a zoomed-out timeline reads blocks instead of every step.
  static constexpr size_t kStepBlock = 32;
  std::vector<int32_t> block_prefill, block_decode;
  std::vector<uint8_t> block_preempt;
  double load_s = 0;            // seconds spent loading and deriving
};
std::unique_ptr<RunSlot> make_slot(RunData d);

// Colours.
ImU32 phase_color(Phase p);
ImU32 owner_color(int32_t row, float value = 0.85f);  // distinct hue per request
ImU32 status_color(SeqStatus s);
extern const ImU32 kFreeColor, kCachedColor, kGridBg, kGridLine, kPrefillColor, kDecodeColor, kAxisColor;
// A second run drawn over the first (Compare panel).
extern const ImU32 kRunColors[2];

// "12.3 ms", "4.56 s", "1:02:03".
std::string format_time(double seconds);
std::string format_ms(double ms);

// Ticks of a horizontal time axis along [x0, x1] px for [t0, t1] s, labels at the top.
void draw_time_axis(ImDrawList* dl, ImVec2 p0, float width, double t0, double t1);

struct PlotLine {
  const std::vector<double>* x = nullptr;  // sorted; null: x = t0 + i * dx
  const std::vector<float>* y = nullptr;
  double t0 = 0, dx = 1;
  ImU32 color = 0;
  const char* name = "";
};
// A step-function plot of several series over [x0, x1] with y in [0, y_max], drawn one
// min/max segment per pixel column. Hovering shows each series' value at the cursor.
void plot_lines(const char* id, ImVec2 size, double x0, double x1, float y_max,
                const std::vector<PlotLine>& lines, const char* y_unit);

struct CdfLine {
  const std::vector<float>* sorted = nullptr;
  ImU32 color = 0;
  const char* name = "";
};
// Empirical CDFs of sorted samples (ms), x on a log or linear axis, with p50/p99 marks.
void plot_cdf(const char* id, ImVec2 size, const std::vector<CdfLine>& lines, bool log_x);

// Small coloured square followed by text, for legends.
void legend_item(ImU32 color, const char* text);

}  // namespace twinfer::viz
