#include "viz/app/draw_util.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "viz/app/pixel_layer.h"

namespace twinfer::viz {

const ImU32 kFreeColor = IM_COL32(48, 52, 60, 255);
const ImU32 kCachedColor = IM_COL32(92, 112, 128, 255);
const ImU32 kGridBg = IM_COL32(22, 24, 28, 255);
const ImU32 kPrefillColor = IM_COL32(236, 140, 52, 255);
const ImU32 kDecodeColor = IM_COL32(70, 150, 230, 255);
const ImU32 kAxisColor = IM_COL32(150, 150, 160, 255);
const ImU32 kGridLine = IM_COL32(60, 60, 70, 255);
const ImU32 kRunColors[2] = {IM_COL32(80, 170, 255, 255), IM_COL32(255, 120, 80, 255)};

std::unique_ptr<RunSlot> make_slot(RunData d) {
  const auto t0 = std::chrono::steady_clock::now();
  auto s = std::make_unique<RunSlot>();
  s->data = std::move(d);
  if (s->data.has_kv_events && s->data.kv_blocks_total > 0)
    s->replay = std::make_unique<KvReplay>(s->data);
  s->series = build_series(s->data);
  const auto& steps = s->data.steps;
  const size_t nb = (steps.size() + RunSlot::kStepBlock - 1) / RunSlot::kStepBlock;
  s->block_prefill.assign(nb, 0);
  s->block_decode.assign(nb, 0);
  s->block_preempt.assign(nb, 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRow& r = steps[i];
    const size_t b = i / RunSlot::kStepBlock;
    s->max_step_tokens = std::max(s->max_step_tokens, r.prefill_tokens + r.decode_tokens);
    s->block_prefill[b] = std::max(s->block_prefill[b], r.prefill_tokens);
    s->block_decode[b] = std::max(s->block_decode[b], r.decode_tokens);
    s->block_preempt[b] |= r.preempted_end != r.preempted_begin;
  }
  s->load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

ImU32 phase_color(Phase p) {
  switch (p) {
    case Phase::queued: return IM_COL32(110, 110, 120, 255);
    case Phase::prefill: return kPrefillColor;
    case Phase::decode: return kDecodeColor;
    case Phase::preempted: return IM_COL32(225, 60, 60, 255);
    case Phase::swapped: return IM_COL32(190, 80, 220, 255);
    case Phase::count: break;
  }
  return IM_COL32_WHITE;
}

ImU32 owner_color(int32_t row, float value) {
  if (row < 0) return IM_COL32(200, 200, 200, 255);
  // Golden-ratio hue steps keep neighbouring requests apart; saturation varies a little too.
  const float h = std::fmod(static_cast<float>(row) * 0.618034f, 1.0f);
  const float s = 0.55f + 0.3f * std::fmod(static_cast<float>(row) * 0.3819f, 1.0f);
  float r, g, b;
  ImGui::ColorConvertHSVtoRGB(h, s, value, r, g, b);
  return ImGui::ColorConvertFloat4ToU32(ImVec4(r, g, b, 1.0f));
}

ImU32 status_color(SeqStatus s) {
  switch (s) {
    case SeqStatus::finished: return IM_COL32(120, 200, 120, 255);
    case SeqStatus::failed: return IM_COL32(240, 80, 80, 255);
    case SeqStatus::swapped: return phase_color(Phase::swapped);
    default: return IM_COL32(230, 200, 90, 255);
  }
}

std::string format_time(double s) {
  char buf[48];
  const double a = std::fabs(s);
  if (!std::isfinite(s)) return "-";
  if (a < 1e-9) return "0";
  if (a < 1e-3) std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  else if (a < 1.0) std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  else if (a < 120.0) std::snprintf(buf, sizeof buf, "%.3f s", s);
  else {
    const auto t = static_cast<long long>(s);
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  }
  return buf;
}

std::string format_ms(double ms) {
  if (!std::isfinite(ms)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.2f" : ms < 1000 ? "%.1f" : "%.0f", ms);
  return buf;
}

namespace {

// A "nice" tick step (1, 2, 5 x 10^k) giving about `target` ticks over `span`.
double nice_step(double span, double target) {
  const double raw = span / std::max(1.0, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

}  // namespace

void draw_time_axis(ImDrawList* dl, ImVec2 p0, float width, double t0, double t1) {
  if (!(t1 > t0) || width < 10) return;
  const double step = nice_step(t1 - t0, width / 110.0);
  const double px = width / (t1 - t0);
  for (double t = std::ceil(t0 / step) * step; t <= t1; t += step) {
    const float x = p0.x + static_cast<float>((t - t0) * px);
    dl->AddLine(ImVec2(x, p0.y + 12), ImVec2(x, p0.y + 18), kAxisColor);
    dl->AddText(ImVec2(x + 2, p0.y), kAxisColor, format_time(t).c_str());
  }
}

void legend_item(ImU32 color, const char* text) {
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float h = ImGui::GetTextLineHeight();
  ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(p.x, p.y + 2), ImVec2(p.x + h - 4, p.y + h - 2), color);
  ImGui::Dummy(ImVec2(h - 2, h));
  ImGui::SameLine();
  ImGui::TextUnformatted(text);
}

void plot_lines(const char* id, ImVec2 size, double x0, double x1, float y_max,
                const std::vector<PlotLine>& lines, const char* y_unit) {
  ImGui::PushID(id);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("plot", size);
  const bool hovered = ImGui::IsItemHovered();
  const float left = 46, top = 18, bottom = 20;
  const ImVec2 a(p.x + left, p.y + top), b(p.x + size.x - 4, p.y + size.y - bottom);
  // Background, grid and the per-column segments go to a CPU layer (pixel_layer.h); text,
  // legend and the hover line stay ImGui primitives drawn over it.
  PixelLayer& layer = layer_for("plot");
  layer.begin(dl, a, b, kGridBg);
  dl->AddText(ImVec2(p.x + 2, p.y), IM_COL32_WHITE, id);
  if (y_max <= 0) y_max = 1;
  char buf[32];
  for (int k = 0; k <= 4; ++k) {
    const float y = b.y - (b.y - a.y) * k / 4.0f;
    layer.fill(a.x, y, b.x, y + 1, kGridLine);
    std::snprintf(buf, sizeof buf, "%.3g", y_max * k / 4.0);
    dl->AddText(ImVec2(p.x + 2, y - 7), kAxisColor, buf);
  }
  draw_time_axis(dl, ImVec2(a.x, b.y + 2), b.x - a.x, x0, x1);
  const int px = std::max(1, static_cast<int>(b.x - a.x));
  std::vector<double> implicit_x;
  const float hx = ImGui::GetIO().MousePos.x;
  const int hover_col = static_cast<int>(hx - a.x);
  std::string tip;
  dl->PushClipRect(a, b, true);
  for (const PlotLine& l : lines) {
    const std::vector<double>* xs = l.x;
    if (!xs) {  // binned series (a few hundred bins): x of bin i is t0 + i * dx
      implicit_x.resize(l.y->size());
      for (size_t i = 0; i < implicit_x.size(); ++i) implicit_x[i] = l.t0 + static_cast<double>(i) * l.dx;
      xs = &implicit_x;
    }
    // Downsampling 500k steps costs milliseconds; redo it only when the view or data changes.
    struct Cached {
      double x0, x1, t0;
      int px;
      size_t n;
      std::vector<ColumnRange> cols;
    };
    static std::unordered_map<const void*, Cached> cache;
    Cached& c = cache[l.y];
    if (c.x0 != x0 || c.x1 != x1 || c.px != px || c.n != l.y->size() || c.t0 != l.t0 || c.cols.empty()) {
      column_ranges(*xs, *l.y, x0, x1, px, c.cols);
      c.x0 = x0, c.x1 = x1, c.px = px, c.n = l.y->size(), c.t0 = l.t0;
    }
    const std::vector<ColumnRange>& cols = c.cols;
    float prev_y = -1;
    for (int c = 0; c < px; ++c) {
      const ColumnRange& r = cols[static_cast<size_t>(c)];
      if (!r.valid) {
        prev_y = -1;
        continue;
      }
      const float ylo = b.y - (b.y - a.y) * std::min(r.lo / y_max, 1.0f);
      const float yhi = b.y - (b.y - a.y) * std::min(r.hi / y_max, 1.0f);
      const float x = a.x + c;
      // Vertical min..max segment, joined to the previous column so steady values form a line.
      const float top_y = prev_y >= 0 ? std::min(yhi, prev_y) : yhi;
      const float bot_y = prev_y >= 0 ? std::max(ylo, prev_y) : ylo;
      layer.fill(x, top_y - 0.5f, x + 1.5f, bot_y + 1.0f, l.color);
      prev_y = (ylo + yhi) * 0.5f;
    }
    if (hovered && hover_col >= 0 && hover_col < px && cols[static_cast<size_t>(hover_col)].valid) {
      std::snprintf(buf, sizeof buf, "%.4g", cols[static_cast<size_t>(hover_col)].hi);
      tip += std::string(l.name) + ": " + buf + " " + y_unit + "\n";
    }
  }
  dl->PopClipRect();
  // Legend, top right.
  float lx = b.x;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    lx -= ImGui::CalcTextSize(it->name).x + 18;
    dl->AddRectFilled(ImVec2(lx, p.y + 3), ImVec2(lx + 10, p.y + 13), it->color);
    dl->AddText(ImVec2(lx + 13, p.y), IM_COL32_WHITE, it->name);
  }
  if (hovered && !tip.empty()) {
    dl->AddLine(ImVec2(hx, a.y), ImVec2(hx, b.y), IM_COL32(255, 255, 255, 90));
    const double t = x0 + (x1 - x0) * (hx - a.x) / (b.x - a.x);
    ImGui::SetTooltip("t = %s\n%s", format_time(t).c_str(), tip.c_str());
  }
  ImGui::PopID();
}

void plot_cdf(const char* id, ImVec2 size, const std::vector<CdfLine>& lines, bool log_x) {
  ImGui::PushID(id);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("cdf", size);
  const bool hovered = ImGui::IsItemHovered();
  const ImVec2 a(p.x + 34, p.y + 18), b(p.x + size.x - 6, p.y + size.y - 20);
  PixelLayer& layer = layer_for("cdf");  // background, grid, curves and marks (see plot_lines)
  layer.begin(dl, a, b, kGridBg);
  dl->AddText(ImVec2(p.x + 2, p.y), IM_COL32_WHITE, id);
  float lo = std::numeric_limits<float>::infinity(), hi = 0;
  for (const CdfLine& l : lines)
    if (l.sorted && !l.sorted->empty()) {
      lo = std::min(lo, l.sorted->front());
      hi = std::max(hi, l.sorted->back());
    }
  if (!(hi > 0)) {
    dl->AddText(ImVec2(a.x + 8, a.y + 8), kAxisColor, "no finished requests");
    ImGui::PopID();
    return;
  }
  lo = log_x ? std::max(lo, hi * 1e-4f) : 0.0f;
  if (log_x && lo <= 0) lo = hi * 1e-4f;
  if (lo >= hi) lo = hi * 0.5f;
  auto to_x = [&](double v) {
    const double f = log_x ? (std::log(std::max<double>(v, lo)) - std::log(lo)) / (std::log(hi) - std::log(lo))
                           : (v - lo) / (hi - lo);
    return a.x + static_cast<float>(std::clamp(f, 0.0, 1.0)) * (b.x - a.x);
  };
  for (int k = 0; k <= 4; ++k) {
    const float y = b.y - (b.y - a.y) * k / 4.0f;
    layer.fill(a.x, y, b.x, y + 1, kGridLine);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.2g", k / 4.0);
    dl->AddText(ImVec2(p.x + 2, y - 7), kAxisColor, buf);
  }
  // Axis labels: decades on a log axis, five steps on a linear one.
  for (int k = 0; k <= 5; ++k) {
    const double v = log_x ? lo * std::pow(static_cast<double>(hi) / lo, k / 5.0) : lo + (hi - lo) * k / 5.0;
    const float x = to_x(v);
    dl->AddLine(ImVec2(x, b.y), ImVec2(x, b.y + 4), kAxisColor);
    const std::string label = format_ms(v) + (k == 5 ? " ms" : "");
    const float tw = ImGui::CalcTextSize(label.c_str()).x;
    dl->AddText(ImVec2(k == 5 ? x - tw : k == 0 ? x : x - tw * 0.5f, b.y + 4), kAxisColor, label.c_str());
  }
  std::string tip;
  const double hover_v = [&] {
    const double f = (ImGui::GetIO().MousePos.x - a.x) / (b.x - a.x);
    return log_x ? lo * std::pow(static_cast<double>(hi) / lo, f) : lo + (hi - lo) * f;
  }();
  for (const CdfLine& l : lines) {
    if (!l.sorted || l.sorted->empty()) continue;
    const auto& v = *l.sorted;
    const size_t n = v.size();
    // Per pixel column the fraction of samples at or below that column's value, joined to the
    // previous column by a 2-px-wide vertical segment (a 1.5-px line, drawn as pixels).
    float prev_y = b.y;
    const int cols = static_cast<int>(b.x - a.x);
    for (int c = 0; c <= cols; ++c) {
      const double f = static_cast<double>(c) / cols;
      const double x = log_x ? lo * std::pow(static_cast<double>(hi) / lo, f) : lo + (hi - lo) * f;
      const size_t k = static_cast<size_t>(std::upper_bound(v.begin(), v.end(), static_cast<float>(x)) - v.begin());
      const float y = b.y - (b.y - a.y) * static_cast<float>(k) / n;
      if (c) layer.fill(a.x + c - 1, std::min(prev_y, y) - 0.75f, a.x + c + 1, std::max(prev_y, y) + 0.75f, l.color);
      prev_y = y;
    }
    for (double q : {0.5, 0.99}) {
      const float x = to_x(sorted_quantile(v, q));
      layer.fill(x, a.y, x + 1, b.y, (l.color & 0x00FFFFFF) | 0x70000000);
    }
    if (hovered) {
      const size_t k = static_cast<size_t>(std::upper_bound(v.begin(), v.end(), static_cast<float>(hover_v)) - v.begin());
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s: %.1f%% <= %s ms  (p50 %s, p99 %s)\n", l.name, 100.0 * k / n,
                    format_ms(hover_v).c_str(), format_ms(sorted_quantile(v, 0.5)).c_str(),
                    format_ms(sorted_quantile(v, 0.99)).c_str());
      tip += buf;
    }
  }
  float lx = b.x;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    lx -= ImGui::CalcTextSize(it->name).x + 18;
    dl->AddRectFilled(ImVec2(lx, p.y + 3), ImVec2(lx + 10, p.y + 13), it->color);
    dl->AddText(ImVec2(lx + 13, p.y), IM_COL32_WHITE, it->name);
  }
  if (hovered && !tip.empty()) ImGui::SetTooltip("%s", tip.c_str());
  ImGui::PopID();
}

}  // namespace twinfer::viz
