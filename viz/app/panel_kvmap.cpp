// KV block map: one cell per physical GPU block (and a strip of host swap blocks), coloured by
// the owning request; shared blocks show their ref count, cached-evictable and free blocks have
// their own colours. Scrubbing time seeks the KvReplay (checkpoint + a few events); the blocks
// the current step touched are outlined, and the selected request's block table is listed.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "viz/app/panels.h"
#include "viz/app/pixel_layer.h"

namespace twinfer::viz {

namespace {

ImU32 cell_color(const BlockCell& c) {
  switch (block_state(c)) {
    case BlockState::free: return kFreeColor;
    case BlockState::cached: return kCachedColor;
    default: return owner_color(c.owner);
  }
}

// Index of the step row in effect at time t (the last starting at or before it); -1 before.
long step_at(const RunData& d, double t) {
  auto it = std::partition_point(d.steps.begin(), d.steps.end(), [&](const StepRow& s) { return s.start <= t; });
  return static_cast<long>(it - d.steps.begin()) - 1;
}

// Where a run opens: the step with the most KV blocks in use, the most interesting moment.
double peak_time(const RunData& d) {
  const StepRow* best = nullptr;
  for (const StepRow& s : d.steps)
    if (!best || s.kv_used > best->kv_used) best = &s;
  return best ? best->start + best->duration : d.t_end;
}

void scrub_controls(RunSlot& run, ViewOptions& v) {
  const RunData& d = run.data;
  KvView& k = v.kv;
  if (!std::isfinite(k.t)) k.t = peak_time(d);
  k.t = std::clamp(k.t, d.t_begin, d.t_end);
  long si = step_at(d, k.t);
  const long nsteps = static_cast<long>(d.steps.size());
  auto go_step = [&](long s) {
    s = std::clamp(s, 0L, std::max(0L, nsteps - 1));
    if (nsteps) k.t = d.steps[static_cast<size_t>(s)].start + d.steps[static_cast<size_t>(s)].duration;
  };
  if (ImGui::Button("|<")) k.t = d.t_begin;
  ImGui::SameLine();
  if (ImGui::Button("<")) go_step(si - 1);
  ImGui::SameLine();
  if (ImGui::Button(k.playing ? "Pause" : "Play")) k.playing = !k.playing;
  ImGui::SameLine();
  if (ImGui::Button(">")) go_step(si + 1);
  ImGui::SameLine();
  if (ImGui::Button(">|")) k.t = d.t_end;
  ImGui::SameLine();
  ImGui::SetNextItemWidth(std::max(100.0f, ImGui::GetContentRegionAvail().x * 0.45f));
  double lo = d.t_begin, hi = d.t_end;
  ImGui::SliderScalar("time", ImGuiDataType_Double, &k.t, &lo, &hi, format_time(k.t).c_str());
  ImGui::SameLine();
  int step_no = static_cast<int>(std::max(0L, si));
  ImGui::SetNextItemWidth(std::max(80.0f, ImGui::GetContentRegionAvail().x * 0.4f));
  if (ImGui::SliderInt("step", &step_no, 0, static_cast<int>(std::max(0L, nsteps - 1)))) go_step(step_no);
  if (k.playing) {
    ImGui::SameLine();
    ImGui::SetNextItemWidth(80);
    ImGui::SliderFloat("steps/frame", &k.play_speed, 1.0f, 200.0f, "%.0f", ImGuiSliderFlags_Logarithmic);
    go_step(si + static_cast<long>(k.play_speed));
    if (si >= nsteps - 1) k.playing = false;
  }
}

// The last events up to `n` that belong to the same step: what just happened.
void recent_events(const RunData& d, size_t n, size_t max, std::vector<size_t>& out) {
  out.clear();
  if (n == 0) return;
  const int64_t step = d.kv.events[n - 1].step;
  for (size_t i = n; i-- > 0 && out.size() < max;) {
    if (d.kv.events[i].step != step) break;
    out.push_back(i);
  }
}

std::string event_text(const RunData& d, size_t i) {
  const KvEvent& e = d.kv.events[i];
  char buf[64];
  std::string s = kv_event_name(e.type);
  if (e.seq >= 0) s += (std::snprintf(buf, sizeof buf, " seq %lld", static_cast<long long>(e.seq)), buf);
  if (e.other >= 0) s += (std::snprintf(buf, sizeof buf, " from %lld", static_cast<long long>(e.other)), buf);
  s += ':';
  auto ids = [&](uint32_t from, uint32_t to) {
    const uint32_t lim = std::min(to, from + 8);
    for (uint32_t k = from; k < lim; ++k) s += (std::snprintf(buf, sizeof buf, " %d", d.kv.ids[k]), buf);
    if (to > lim) s += (std::snprintf(buf, sizeof buf, " ... (%u)", to - from), buf);
  };
  ids(e.b0, e.b1);
  if (e.b2 > e.b1) s += e.type == KvEventType::cow ? " ->" : " <-> host";
  ids(e.b1, e.b2);
  return s;
}

// Cells drawn row by row with runs of equal colour merged into one rectangle.
void draw_grid(const RunData& d, int n, float cell, ImVec2 o, int cols, ImDrawList* dl,
               const BlockCell* gpu, const HostCell* host, const std::vector<uint8_t>& touched,
               ViewOptions& v, bool show_refs, const char* what) {
  const float gap = cell >= 5 ? 1.0f : 0.0f;
  // Cells go to a CPU layer (pixel_layer.h): 28k cells are 57k triangles for the GPU path.
  // Its background is the window's, so the gaps between cells look as before.
  const int rows = (n + cols - 1) / cols;
  const ImVec4 wbg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
  PixelLayer& px = layer_for(what);
  px.begin(dl, o, ImVec2(o.x + cols * cell, o.y + rows * cell), ImGui::ColorConvertFloat4ToU32(ImVec4(wbg.x, wbg.y, wbg.z, 1)));
  for (int r0 = 0; r0 < n; r0 += cols) {
    const int r1 = std::min(n, r0 + cols);
    const float y = o.y + static_cast<float>(r0 / cols) * cell;
    int run_start = r0;
    ImU32 run_col = 0;
    for (int i = r0; i <= r1; ++i) {
      ImU32 c = 0;
      if (i < r1) {
        if (gpu) c = cell_color(gpu[i]);
        else c = host[i].owner == -1 ? kFreeColor : owner_color(host[i].owner, 0.6f);
      }
      if (i == r1 || c != run_col || gap > 0) {
        if (i > run_start) {
          const float x0 = o.x + (run_start - r0) * cell, x1 = o.x + (i - r0) * cell - gap;
          px.fill(x0, y, x1, y + cell - gap, run_col);
        }
        run_start = i;
        run_col = c;
      }
    }
  }
  // Overlays: ref counts of shared blocks, hatching of swapped host blocks, touched outlines,
  // the selected request's blocks.
  for (int i = 0; i < n; ++i) {
    const float x = o.x + (i % cols) * cell, y = o.y + (i / cols) * cell;
    if (gpu) {
      const BlockCell& c = gpu[i];
      if (c.ref > 1 && show_refs) {
        if (cell >= 13) {
          char t[8];
          std::snprintf(t, sizeof t, "%d", c.ref);
          dl->AddText(ImVec2(x + 2, y + (cell - 13) * 0.5f), IM_COL32_BLACK, t);
        } else {
          px.fill(x + cell * 0.3f, y + cell * 0.3f, x + cell * 0.7f, y + cell * 0.7f, IM_COL32_WHITE);
        }
      }
      if (c.hashed && c.ref > 0 && cell >= 8) dl->AddLine(ImVec2(x, y), ImVec2(x + cell * 0.4f, y), IM_COL32(255, 255, 255, 160));
      if (!touched.empty() && touched[static_cast<size_t>(i)])
        dl->AddRect(ImVec2(x - 1, y - 1), ImVec2(x + cell, y + cell), IM_COL32(255, 255, 80, 255), 0, 0, 1.5f);
      if (v.selected >= 0 && c.ref > 0 && c.owner == v.selected)
        dl->AddRect(ImVec2(x, y), ImVec2(x + cell - 1, y + cell - 1), IM_COL32_WHITE);
    } else if (host[i].owner != -1 && cell >= 6) {
      dl->AddLine(ImVec2(x, y + cell - 1), ImVec2(x + cell - 1, y), IM_COL32(0, 0, 0, 140));
    }
  }
  // Hover and click.
  const ImVec2 m = ImGui::GetIO().MousePos;
  const int cx = static_cast<int>((m.x - o.x) / cell), cy = static_cast<int>((m.y - o.y) / cell);
  if (m.x < o.x || m.y < o.y || cx >= cols || !ImGui::IsWindowHovered()) return;
  const int i = cy * cols + cx;
  if (i < 0 || i >= n) return;
  const int32_t owner = gpu ? gpu[i].owner : host[i].owner;
  const auto owner_id = [&]() -> long long {
    return owner >= 0 ? static_cast<long long>(d.requests[static_cast<size_t>(owner)].id) : -1;
  };
  if (gpu) {
    const BlockCell& c = gpu[i];
    static const char* kState[] = {"free", "cached (evictable prefix block)", "used", "shared"};
    ImGui::SetTooltip("%s block %d: %s\nref count %d%s\n%s %lld", what, i, kState[static_cast<int>(block_state(c))],
                      c.ref, c.hashed ? ", in the prefix cache" : "", c.ref > 0 ? "owner: request" : "last owner: request",
                      owner_id());
  } else {
    ImGui::SetTooltip("%s block %d: %s %lld", what, i, owner == -1 ? "free" : "holds swapped-out request", owner_id());
  }
  if (ImGui::IsMouseClicked(ImGuiMouseButton_Left) && owner >= 0) v.selected = owner;
}

void side_panel(RunSlot& run, ViewOptions& v, bool compact) {
  const RunData& d = run.data;
  KvReplay& r = *run.replay;
  const KvCounts c = r.counts();
  const int total = static_cast<int>(r.gpu().size());
  ImGui::Text("%d GPU blocks x %d tokens", total, d.block_size);
  legend_item(kFreeColor, ("free " + std::to_string(c.free)).c_str());
  legend_item(kCachedColor, ("cached " + std::to_string(c.cached)).c_str());
  legend_item(owner_color(7), ("used " + std::to_string(c.used)).c_str());
  legend_item(IM_COL32_WHITE, ("shared (ref>1) " + std::to_string(c.shared)).c_str());
  legend_item(owner_color(7, 0.6f), ("host swapped " + std::to_string(c.host_swapped)).c_str());
  ImGui::TextDisabled("yellow outline: touched this step");
  ImGui::Text("event %zu / %zu", r.applied(), r.num_events());
  ImGui::Separator();
  if (v.selected >= 0 && static_cast<size_t>(v.selected) < d.requests.size()) {
    const RequestRow& q = d.requests[static_cast<size_t>(v.selected)];
    ImGui::Text("request %lld  (prompt %d, output %d)", static_cast<long long>(q.id), q.prompt_len, q.output_len);
    const BlockTable t = r.table_at(v.selected, r.applied());
    if (t.gpu.empty() && t.host.empty()) ImGui::TextDisabled("no blocks at this time");
    if (!t.host.empty()) ImGui::Text("swapped out to %zu host blocks", t.host.size());
    ImGui::BeginChild("table", ImVec2(0, compact ? 120 : 220), true);
    const auto& list = t.gpu.empty() ? t.host : t.gpu;
    for (size_t i = 0; i < list.size(); ++i) {
      if (t.gpu.empty()) {
        ImGui::Text("%4zu -> host %d", i, list[i]);
      } else {
        const BlockCell& b = r.gpu()[static_cast<size_t>(list[i])];
        ImGui::Text("%4zu -> %6d  ref %d%s", i, list[i], b.ref, b.hashed ? "  cached" : "");
      }
    }
    ImGui::EndChild();
  } else {
    ImGui::TextDisabled("click a block to see its request's\nblock table (logical -> physical)");
  }
  if (compact) return;
  ImGui::Separator();
  ImGui::TextUnformatted("this step's events (latest first)");
  static std::vector<size_t> recent;
  recent_events(d, r.applied(), 64, recent);
  ImGui::BeginChild("events", ImVec2(0, 0), true);
  for (size_t i : recent) ImGui::TextUnformatted(event_text(d, i).c_str());
  ImGui::EndChild();
}

}  // namespace

void draw_kvmap(RunSlot& run, ViewOptions& v, bool compact) {
  const RunData& d = run.data;
  if (!run.replay) {
    ImGui::TextColored(ImVec4(1, 0.6f, 0.3f, 1), "%s: no KV events recorded (kv_events.csv missing or the run used --no-kv-events)",
                       d.label.c_str());
    return;
  }
  KvReplay& r = *run.replay;
  if (!r.error().empty()) ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "%s", r.error().c_str());
  for (const std::string& m : r.mismatches()) ImGui::TextColored(ImVec4(1, 0.7f, 0.3f, 1), "steps.csv disagrees: %s", m.c_str());
  if (!compact) scrub_controls(run, v);
  if (!std::isfinite(v.kv.t)) v.kv.t = peak_time(d);
  r.seek(r.events_until(v.kv.t));

  // Blocks the current step touched, for outlines.
  static std::vector<uint8_t> touched;
  static std::vector<size_t> recent;
  touched.assign(r.gpu().size(), 0);
  recent_events(d, r.applied(), 4096, recent);
  for (size_t i : recent) {
    const KvEvent& e = d.kv.events[i];
    const bool gpu2 = e.type == KvEventType::cow;
    for (uint32_t k = e.b0; k < (gpu2 ? e.b2 : e.b1); ++k) touched[static_cast<size_t>(d.kv.ids[k])] = 1;
  }

  const float side = compact ? 230.0f : 300.0f;
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  ImGui::BeginChild("grid", ImVec2(avail.x - side, avail.y), false);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  const ImVec2 room = ImGui::GetContentRegionAvail();
  const int n = static_cast<int>(r.gpu().size());
  const int nh = v.kv.show_host ? static_cast<int>(r.host().size()) : 0;
  // Largest cell that fits every GPU block in the room left after the host strip.
  constexpr float kHostStrip = 60.0f;  // pixels for the host pool's cells
  const float host_h = nh ? kHostStrip + 22.0f : 0.0f;
  float cell = std::floor(std::sqrt(std::max(1.0f, room.x * (room.y - host_h - 4)) / std::max(1, n)));
  cell = std::clamp(cell, 2.0f, 48.0f);
  int cols = std::max(1, static_cast<int>(room.x / cell));
  while (cell > 2 && std::ceil(static_cast<float>(n) / cols) * cell > room.y - host_h - 4) {
    cell -= 1;
    cols = std::max(1, static_cast<int>(room.x / cell));
  }
  ImDrawList* dl = ImGui::GetWindowDrawList();
  draw_grid(d, n, cell, o, cols, dl, r.gpu().data(), nullptr, touched, v, v.kv.show_ref_counts, "GPU");
  const float grid_h = std::ceil(static_cast<float>(n) / cols) * cell;
  ImGui::Dummy(ImVec2(cols * cell, grid_h + 4));
  if (nh) {
    ImGui::TextDisabled("host swap pool: %d blocks", nh);
    const ImVec2 ho = ImGui::GetCursorScreenPos();
    const float hc = std::clamp(std::floor(std::sqrt(room.x * kHostStrip / std::max(1, nh))), 2.0f, 10.0f);
    const int hcols = std::max(1, static_cast<int>(room.x / hc));
    draw_grid(d, nh, hc, ho, hcols, dl, nullptr, r.host().data(), {}, v, false, "host");
    ImGui::Dummy(ImVec2(hcols * hc, std::ceil(static_cast<float>(nh) / hcols) * hc));
  }
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("side", ImVec2(side - 8, avail.y), false);
  side_panel(run, v, compact);
  ImGui::EndChild();
}

}  // namespace twinfer::viz
