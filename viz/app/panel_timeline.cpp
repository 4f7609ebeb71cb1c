// Timeline: engine steps as stacked bars (prefill under decode tokens) and one row per request
// coloured by phase. Wheel zooms around the cursor, drag pans, double-click fits; steps narrower
// than a pixel fold into one bar per pixel column (the tallest), marked by a lighter cap.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "viz/app/panels.h"
#include "viz/app/pixel_layer.h"

namespace twinfer::viz {

void timeline_fit(const RunData& d, TimelineView& t) {
  const double pad = (d.t_end - d.t_begin) * 0.01;
  t.t0 = d.t_begin - pad;
  t.t1 = d.t_end + pad;
}

namespace {

constexpr float kGutter = 64.0f;  // request ids left of the rows

// Zoom around the mouse with the wheel, pan by dragging, fit on double-click. `area` is the
// screen rectangle of the time axis (x) the interaction maps onto.
void zoom_pan(const RunData& d, TimelineView& t, ImVec2 a, ImVec2 b, bool hovered) {
  ImGuiIO& io = ImGui::GetIO();
  const double span = t.t1 - t.t0;
  const double s_per_px = span / std::max(1.0f, b.x - a.x);
  if (hovered && io.MouseWheel != 0 && !io.KeyShift) {
    const double tm = t.t0 + (io.MousePos.x - a.x) * s_per_px;
    const double f = std::pow(1.25, -io.MouseWheel);
    const double ns = std::clamp(span * f, 1e-6, (d.t_end - d.t_begin) * 4 + 1e-3);
    const double k = ns / span;
    t.t0 = tm - (tm - t.t0) * k;
    t.t1 = tm + (t.t1 - tm) * k;
  }
  if (hovered && ImGui::IsMouseDragging(ImGuiMouseButton_Left, 2.0f)) {
    t.t0 -= io.MouseDelta.x * s_per_px;
    t.t1 -= io.MouseDelta.x * s_per_px;
  }
  if (hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Left)) timeline_fit(d, t);
}

void draw_steps(RunSlot& run, TimelineView& t, ImVec2 a, ImVec2 b) {
  const RunData& d = run.data;
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const float w = b.x - a.x, h = b.y - a.y - 2;
  const double px_per_s = w / (t.t1 - t.t0);
  const auto& st = d.steps;
  // First step still running at t0, through the last starting before t1.
  size_t i0 = static_cast<size_t>(std::partition_point(st.begin(), st.end(), [&](const StepRow& s) {
                                    return s.start + s.duration < t.t0;
                                  }) - st.begin());
  const size_t i1 = static_cast<size_t>(std::partition_point(st.begin() + static_cast<std::ptrdiff_t>(i0), st.end(),
                                                             [&](const StepRow& s) { return s.start <= t.t1; }) -
                                        st.begin());
  // Bar height grows with the square root of the step's tokens, so one-token decode steps stay
  // visible next to 8k-token prefills; prefill and decode split the bar in proportion.
  const float root_max = std::sqrt(static_cast<float>(std::max(1, run.max_step_tokens)));
  auto bar = [&](int32_t pre, int32_t dec, float& yp, float& yd) {
    const int32_t tot = pre + dec;
    const float hh = tot > 0 ? h * std::sqrt(static_cast<float>(tot)) / root_max : 0.0f;
    yd = b.y - hh;
    yp = b.y - (tot > 0 ? hh * static_cast<float>(pre) / static_cast<float>(tot) : 0.0f);
  };
  const ImGuiIO& io = ImGui::GetIO();
  const bool hovered = ImGui::IsMouseHoveringRect(a, b);
  const int hover_px = static_cast<int>(io.MousePos.x - a.x);
  dl->PushClipRect(a, b, true);
  // The background and bars go to a CPU layer (see pixel_layer.h); markers and text stay ImGui.
  PixelLayer& px = layer_for("steps");
  px.begin(dl, a, b, kGridBg);
  if (i1 - i0 <= static_cast<size_t>(w)) {
    // Few enough to draw one by one.
    for (size_t i = i0; i < i1; ++i) {
      const StepRow& s = st[i];
      const float x0 = a.x + static_cast<float>((s.start - t.t0) * px_per_s);
      const float x1 = std::max(x0 + 1.0f, a.x + static_cast<float>((s.start + s.duration - t.t0) * px_per_s) - 1);
      float yp, yd;
      bar(s.prefill_tokens, s.decode_tokens, yp, yd);
      px.fill(x0, yp, x1, b.y, kPrefillColor);
      px.fill(x0, yd, x1, yp, kDecodeColor);
      if (s.preempted_end != s.preempted_begin)
        dl->AddTriangleFilled(ImVec2(x0, a.y), ImVec2(x0 + 6, a.y), ImVec2(x0 + 3, a.y + 6), phase_color(Phase::preempted));
      if (hovered && io.MousePos.x >= x0 && io.MousePos.x < x1 + 1)
        ImGui::SetTooltip("step %lld  start %s  took %s\nprefill %d tokens (%d seqs)\ndecode %d tokens (%d seqs)\n"
                          "running %d  waiting %d  swapped %d\nKV blocks used %d  cached %d\npreempted %u",
                          static_cast<long long>(s.step), format_time(s.start).c_str(), format_time(s.duration).c_str(),
                          s.prefill_tokens, s.prefill_seqs, s.decode_tokens, s.decode_seqs, s.running, s.waiting,
                          s.swapped, s.kv_used, s.kv_cached, s.preempted_end - s.preempted_begin);
    }
  } else {
    // Folded: per pixel column, the tallest prefill and decode among the steps it covers.
    // Rebuilt only when the view moves: a full 500k-step run takes a few ms to fold.
    const int n = static_cast<int>(w) + 1;
    static std::vector<int32_t> pre, dec, cnt;
    static std::vector<uint8_t> preempt;
    static const RunSlot* key_run = nullptr;
    static double key_t0 = 0, key_t1 = 0;
    static size_t key_steps = 0;
    const bool fresh = key_run == &run && key_t0 == t.t0 && key_t1 == t.t1 && key_steps == st.size() &&
                       pre.size() == static_cast<size_t>(n);
    key_run = &run, key_t0 = t.t0, key_t1 = t.t1, key_steps = st.size();
    if (!fresh) {
      pre.assign(static_cast<size_t>(n), 0);
      dec.assign(static_cast<size_t>(n), 0);
      cnt.assign(static_cast<size_t>(n), 0);
      preempt.assign(static_cast<size_t>(n), 0);
    }
    // A step falls in column clamp(int((start - t0) * px_per_s), 0, n - 1); starts are sorted,
    // so each column is an index range, found by binary search. Whole blocks of the range are
    // read from RunSlot's per-block maxima (a full-run view has ~400 steps per column).
    const auto col_of = [&](const StepRow& s) { return std::clamp(static_cast<int>((s.start - t.t0) * px_per_s), 0, n - 1); };
    constexpr size_t B = RunSlot::kStepBlock;
    size_t lo = fresh ? i1 : i0;
    for (int c = 0; lo < i1 && c < n; ++c) {
      const size_t hi = c == n - 1 ? i1
                                   : static_cast<size_t>(std::partition_point(st.begin() + static_cast<std::ptrdiff_t>(lo),
                                                                              st.begin() + static_cast<std::ptrdiff_t>(i1),
                                                                              [&](const StepRow& s) { return col_of(s) <= c; }) -
                                                         st.begin());
      if (hi == lo) continue;
      const auto k = static_cast<size_t>(col_of(st[lo]));  // == c unless clamped steps precede
      const auto take = [&](int32_t p, int32_t dd, bool pe) {
        pre[k] = std::max(pre[k], p);
        dec[k] = std::max(dec[k], dd);
        preempt[k] |= pe;
      };
      const auto step = [&](const StepRow& s) { take(s.prefill_tokens, s.decode_tokens, s.preempted_end != s.preempted_begin); };
      size_t i = lo;
      for (; i < hi && i % B; ++i) step(st[i]);
      for (; i + B <= hi; i += B) take(run.block_prefill[i / B], run.block_decode[i / B], run.block_preempt[i / B]);
      for (; i < hi; ++i) step(st[i]);
      cnt[k] += static_cast<int32_t>(hi - lo);
      lo = hi;
    }
    for (int c = 0; c < n; ++c) {
      if (!cnt[static_cast<size_t>(c)]) continue;
      const float x = a.x + c;
      float yp, yd;
      bar(pre[static_cast<size_t>(c)], dec[static_cast<size_t>(c)], yp, yd);
      px.fill(x, yp, x + 1, b.y, kPrefillColor);
      px.fill(x, yd, x + 1, yp, kDecodeColor);
      if (cnt[static_cast<size_t>(c)] > 1) px.fill(x, yd - 2, x + 1, yd, IM_COL32(255, 255, 255, 110));
      if (preempt[static_cast<size_t>(c)]) px.fill(x, a.y, x + 1, a.y + 5, phase_color(Phase::preempted));
    }
    if (hovered && hover_px >= 0 && hover_px < n && cnt[static_cast<size_t>(hover_px)])
      ImGui::SetTooltip("%d steps folded into this pixel (zoom in to see them)\nmax prefill %d, max decode %d tokens",
                        cnt[static_cast<size_t>(hover_px)], pre[static_cast<size_t>(hover_px)], dec[static_cast<size_t>(hover_px)]);
  }
  dl->PopClipRect();
}

void draw_rows(RunSlot& run, ViewOptions& v, ImVec2 size) {
  const RunData& d = run.data;
  TimelineView& t = v.timeline;
  // Rows: requests in arrival order, optionally only those alive in the view.
  static std::vector<int32_t> rows;
  rows.clear();
  const auto& rq = d.requests;
  for (size_t i = 0; i < rq.size(); ++i) {
    const RequestRow& q = rq[i];
    if (!std::isfinite(q.arrival)) continue;
    if (t.only_visible && (q.arrival > t.t1 || q.end < t.t0)) continue;
    rows.push_back(static_cast<int32_t>(i));
  }
  ImGui::BeginChild("rows", size, false, ImGuiWindowFlags_NoScrollWithMouse);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  ImGuiIO& io = ImGui::GetIO();
  const float rh = t.row_height;
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float width = ImGui::GetContentRegionAvail().x;
  const float x_a = origin.x + kGutter, x_b = origin.x + width;
  const double px_per_s = (x_b - x_a) / (t.t1 - t.t0);
  const bool hovered = ImGui::IsWindowHovered();
  // Phase spans go to a CPU layer (pixel_layer.h) over the visible rows; ids, marks and the
  // scrollbar's area stay ImGui (the blit is clipped to the content, not the scrollbar).
  const ImVec4 wbg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
  PixelLayer& px = layer_for("rows");
  px.begin(dl, ImGui::GetWindowPos(),
           ImVec2(ImGui::GetWindowPos().x + ImGui::GetWindowWidth(), ImGui::GetWindowPos().y + ImGui::GetWindowHeight()),
           ImGui::ColorConvertFloat4ToU32(ImVec4(wbg.x, wbg.y, wbg.z, 1)));
  if (hovered && io.KeyShift && io.MouseWheel != 0) ImGui::SetScrollY(ImGui::GetScrollY() - io.MouseWheel * rh * 8);
  ImGuiListClipper clip;
  clip.Begin(static_cast<int>(rows.size()), rh);
  const ImVec2 clip_a = ImGui::GetWindowPos(), clip_b(clip_a.x + ImGui::GetWindowWidth(), clip_a.y + ImGui::GetWindowHeight());
  while (clip.Step()) {
    for (int k = clip.DisplayStart; k < clip.DisplayEnd; ++k) {
      const int32_t row = rows[static_cast<size_t>(k)];
      const RequestRow& q = rq[static_cast<size_t>(row)];
      const ImVec2 p = ImGui::GetCursorScreenPos();
      ImGui::Dummy(ImVec2(width, rh));
      const float y0 = p.y + 1, y1 = p.y + rh - 1;
      if (row == v.selected) px.fill(p.x, p.y, x_b, p.y + rh, IM_COL32(255, 255, 255, 40));
      if (rh >= 10) {
        char id[24];
        std::snprintf(id, sizeof id, "%lld", static_cast<long long>(q.id));
        dl->AddText(ImVec2(p.x + 2, p.y + (rh - 13) * 0.5f), status_color(q.status), id);
      }
      px.set_clip(ImVec2(x_a, std::max(y0, clip_a.y)), ImVec2(x_b, std::min(y1 + 1, clip_b.y)));
      for (uint32_t s = q.span_begin; s < q.span_end; ++s) {
        const PhaseSpan& sp = d.spans[s];
        const float xa = x_a + static_cast<float>((sp.t0 - t.t0) * px_per_s);
        const float xb = std::max(xa + 1.0f, x_a + static_cast<float>((sp.t1 - t.t0) * px_per_s));
        if (xb < x_a || xa > x_b) continue;
        px.fill(xa, y0, xb, y1, phase_color(sp.phase));
      }
      px.reset_clip();
      dl->PushClipRect(ImVec2(x_a, std::max(y0, clip_a.y)), ImVec2(x_b, std::min(y1 + 1, clip_b.y)), true);
      if (q.status == SeqStatus::failed) dl->AddText(ImVec2(x_a + static_cast<float>((q.end - t.t0) * px_per_s) + 3, p.y - 1), status_color(q.status), "x");
      dl->PopClipRect();
      if (hovered && io.MousePos.y >= p.y && io.MousePos.y < p.y + rh) {
        const double tm = t.t0 + (io.MousePos.x - x_a) / px_per_s;
        const char* phase = "-";
        for (uint32_t s = q.span_end; s-- > q.span_begin;)
          if (d.spans[s].t0 <= tm && tm <= d.spans[s].t1) {
            phase = phase_name(d.spans[s].phase);
            break;
          }
        ImGui::SetTooltip("request %lld (%s)  at %s: %s\nprompt %d  output %d  priority %d\narrival %s  TTFT %s  e2e %s\n"
                          "preemptions %d  prefix hit %d tokens%s%s",
                          static_cast<long long>(q.id), seq_status_name(q.status), format_time(tm).c_str(), phase,
                          q.prompt_len, q.output_len, q.priority, format_time(q.arrival).c_str(),
                          format_time(q.ttft).c_str(), format_time(q.e2e).c_str(), q.num_preemptions,
                          q.prefix_hit_tokens, q.error.empty() ? "" : "\nerror: ", q.error.c_str());
        if (ImGui::IsMouseReleased(ImGuiMouseButton_Left) && ImGui::GetMouseDragDelta(ImGuiMouseButton_Left).x == 0)
          v.selected = row;
      }
    }
  }
  clip.End();
  if (rows.empty()) ImGui::TextDisabled("no requests in this time range");
  zoom_pan(d, t, ImVec2(x_a, clip_a.y), ImVec2(x_b, clip_b.y), hovered);
  ImGui::EndChild();
}

}  // namespace

void draw_timeline(RunSlot& run, ViewOptions& v, float height) {
  const RunData& d = run.data;
  TimelineView& t = v.timeline;
  if (!(t.t1 > t.t0)) timeline_fit(d, t);
  if (ImGui::Button("Fit")) timeline_fit(d, t);
  ImGui::SameLine();
  if (ImGui::Button("Selected") && v.selected >= 0) {
    const RequestRow& q = d.requests[static_cast<size_t>(v.selected)];
    const double pad = std::max(1e-3, (q.end - q.arrival) * 0.1);
    t.t0 = q.arrival - pad;
    t.t1 = q.end + pad;
  }
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("zoom to the selected request (click a row, a block or a table line)");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(90);
  ImGui::SliderFloat("row height", &t.row_height, 4.0f, 24.0f, "%.0f px");
  ImGui::SameLine();
  ImGui::Checkbox("only requests in view", &t.only_visible);
  ImGui::SameLine();
  ImGui::TextDisabled("%s .. %s   wheel: zoom  drag: pan  shift+wheel: scroll  double-click: fit",
                      format_time(t.t0).c_str(), format_time(t.t1).c_str());
  for (Phase p : {Phase::queued, Phase::prefill, Phase::decode, Phase::preempted, Phase::swapped}) {
    legend_item(phase_color(p), phase_name(p));
    ImGui::SameLine();
  }
  ImGui::TextDisabled(" | bars: tokens per step (height ~ sqrt), prefill (orange) under decode (blue)");

  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float w = ImGui::GetContentRegionAvail().x;
  const ImVec2 a(p.x + kGutter, p.y + 20), b(p.x + w, p.y + 20 + 64);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  draw_time_axis(dl, ImVec2(a.x, p.y), b.x - a.x, t.t0, t.t1);
  dl->AddText(ImVec2(p.x + 2, a.y + 24), kAxisColor, "steps");
  ImGui::InvisibleButton("steps", ImVec2(w, b.y - p.y));
  draw_steps(run, t, a, b);
  zoom_pan(d, t, a, b, ImGui::IsItemHovered());
  const float rest = height > 0 ? height : ImGui::GetContentRegionAvail().y;
  draw_rows(run, v, ImVec2(w, std::max(40.0f, rest)));
}

}  // namespace twinfer::viz
