#include "viz/app/app.h"

#include <cstdio>

#include "core/error.h"
#include "viz/app/panels.h"

namespace twinfer::viz {

const char* panel_name(Panel p) {
  static const char* kNames[] = {"timeline", "kv", "requests", "metrics", "compare", "live"};
  return kNames[static_cast<int>(p)];
}

App::App(AppOptions opt) : opt_(std::move(opt)) {
  for (const std::string& dir : opt_.run_dirs) {
    try {
      runs_.push_back(make_slot(load_run(dir)));
      RunSlot& s = *runs_.back();
      for (const std::string& w : s.data.warnings) warnings_.push_back(w);
      if (s.replay && !s.replay->error().empty()) warnings_.push_back(dir + ": " + s.replay->error());
      for (const std::string& m : s.replay ? s.replay->mismatches() : std::vector<std::string>{})
        warnings_.push_back(dir + ": steps.csv and kv_events.csv disagree: " + m);
    } catch (const std::exception& e) {
      errors_.push_back(e.what());
    }
  }
  for (const std::string& e : errors_) std::fprintf(stderr, "twinfer-viz: error: %s\n", e.c_str());
  for (const std::string& w : warnings_) std::fprintf(stderr, "twinfer-viz: warning: %s\n", w.c_str());
  view_ = opt_.view;
  view_.panel = opt_.panel_given ? opt_.panel : opt_.live ? Panel::live : Panel::timeline;
  view_.panel_forced = true;
  forced_ = view_.panel;
  view_.compare_b = runs_.size() > 1 ? 1 : 0;
  if (opt_.select_id >= 0 && !runs_.empty()) {
    view_.selected = runs_.front()->data.row_of(opt_.select_id);
    if (view_.selected < 0) std::fprintf(stderr, "twinfer-viz: --select %lld: no such request\n", opt_.select_id);
  }
}

double App::total_load_s() const {
  double t = 0;
  for (const auto& r : runs_) t += r->load_s;
  return t;
}

void App::header() {
  if (runs_.size() > 1) {
    ImGui::SetNextItemWidth(220);
    if (ImGui::BeginCombo("run", runs_[static_cast<size_t>(view_.run)]->data.label.c_str())) {
      for (size_t i = 0; i < runs_.size(); ++i)
        if (ImGui::Selectable((runs_[i]->data.label + "##" + std::to_string(i)).c_str(), view_.run == static_cast<int>(i))) {
          view_.run = static_cast<int>(i);
          view_.selected = -1;
          view_.timeline.t1 = view_.timeline.t0;  // refit
          view_.kv.t = std::numeric_limits<double>::infinity();
        }
      ImGui::EndCombo();
    }
    ImGui::SameLine();
  }
  if (!runs_.empty()) {
    const RunData& d = runs_[static_cast<size_t>(view_.run)]->data;
    ImGui::Text("%s  |  %s  |  %zu requests, %zu steps, %zu KV events, %d blocks x %d tokens",
                d.dir.c_str(), d.summary.backend.c_str(), d.requests.size(), d.steps.size(), d.kv.events.size(),
                d.kv_blocks_total, d.block_size);
    ImGui::SameLine();
  }
  ImGui::TextDisabled("  %.0f fps", ImGui::GetIO().Framerate);
  for (const std::string& e : errors_) ImGui::TextColored(ImVec4(1, 0.35f, 0.35f, 1), "cannot open: %s", e.c_str());
  if (!warnings_.empty() && ImGui::TreeNode("warnings", "%zu warning(s)", warnings_.size())) {
    for (const std::string& w : warnings_) ImGui::TextColored(ImVec4(1, 0.75f, 0.3f, 1), "%s", w.c_str());
    ImGui::TreePop();
  }
}

void App::compare_pickers() {
  for (int* which : {&view_.compare_a, &view_.compare_b}) {
    ImGui::PushID(which);
    ImGui::SetNextItemWidth(220);
    const char* label = which == &view_.compare_a ? "A" : "B";
    if (ImGui::BeginCombo(label, runs_[static_cast<size_t>(*which)]->data.label.c_str())) {
      for (size_t i = 0; i < runs_.size(); ++i)
        if (ImGui::Selectable((runs_[i]->data.label + "##" + std::to_string(i)).c_str(), *which == static_cast<int>(i)))
          *which = static_cast<int>(i);
      ImGui::EndCombo();
    }
    ImGui::PopID();
    ImGui::SameLine();
  }
  ImGui::NewLine();
}

void App::no_run_message() {
  ImGui::TextWrapped("No run loaded. Open run folders written by `twinfer run --out DIR`:\n"
                     "    twinfer-viz RUN_DIR [RUN_DIR...]\nor try the Live tab (twinfer-viz --live).");
}

void App::frame() {
  if (opt_.bench_motion) {
    // What a user's drag or playback does, every frame, so the benchmark pays for redrawn
    // content rather than replaying cached layers: the timeline pans by 1% of its range (the
    // steps re-fold, every layer changes), the KV map plays 4 steps a frame, the metrics' CDFs
    // switch between log and linear axes.
    TimelineView& t = view_.timeline;
    if (t.t1 > t.t0) {
      const double shift = (t.t1 - t.t0) * 0.01 * ((frame_count_ / 50) % 2 ? -1 : 1);
      t.t0 += shift;
      t.t1 += shift;
    }
    if (!view_.kv.playing) view_.kv.playing = true, view_.kv.play_speed = 4;
    view_.metrics.log_x_cdf = frame_count_ % 2 == 0;
  }
  ++frame_count_;
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->WorkPos);
  ImGui::SetNextWindowSize(vp->WorkSize);
  // No background: the window covers the screen, and main.cpp clears to its colour instead of
  // blending a full-screen quad (under a software rasterizer that quad was a third of a frame).
  ImGui::Begin("twinfer-viz", nullptr,
               ImGuiWindowFlags_NoBackground | ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoBringToFrontOnFocus |
                   ImGuiWindowFlags_NoSavedSettings);
  {  // ImGui skips the window border along with the background; keep the 1-px frame.
    const ImVec2 p = ImGui::GetWindowPos(), q(p.x + ImGui::GetWindowSize().x, p.y + ImGui::GetWindowSize().y);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->PushClipRect(p, q, false);  // the window's own clip rect stops inside the border
    dl->AddRect(p, q, ImGui::GetColorU32(ImGuiCol_Border), ImGui::GetStyle().WindowRounding, 0,
                ImGui::GetStyle().WindowBorderSize);
    dl->PopClipRect();
  }
  header();
  if (ImGui::BeginTabBar("panels")) {
    static const char* kTitles[] = {"Timeline", "KV blocks", "Requests", "Metrics", "Compare", "Live"};
    for (int i = 0; i < static_cast<int>(Panel::count); ++i) {
      const auto p = static_cast<Panel>(i);
      const ImGuiTabItemFlags f = view_.panel_forced && forced_ == p ? ImGuiTabItemFlags_SetSelected : 0;
      if (!ImGui::BeginTabItem(kTitles[i], nullptr, f)) continue;
      view_.panel = p;
      RunSlot* run = runs_.empty() ? nullptr : runs_[static_cast<size_t>(view_.run)].get();
      switch (p) {
        case Panel::timeline:
          if (run) draw_timeline(*run, view_);
          else no_run_message();
          break;
        case Panel::kv:
          if (run) draw_kvmap(*run, view_);
          else no_run_message();
          break;
        case Panel::requests:
          if (run) draw_requests(*run, view_);
          else no_run_message();
          break;
        case Panel::metrics:
          if (run) draw_metrics(*run, view_);
          else no_run_message();
          break;
        case Panel::compare:
          if (runs_.size() >= 2) {
            if (runs_.size() > 2) compare_pickers();
            draw_compare(*runs_[static_cast<size_t>(view_.compare_a)], *runs_[static_cast<size_t>(view_.compare_b)], view_);
          } else {
            ImGui::TextWrapped("Compare needs two runs: twinfer-viz RUN_A RUN_B (a hardware run and its simulated twin, "
                               "or the same workload under two policies).");
          }
          break;
        case Panel::live:
          if (!live_) live_ = std::make_unique<LivePanel>(opt_.live ? opt_.live_config : live_default_config());
          live_->draw(opt_.fixed_dt);
          break;
        case Panel::count:
          break;
      }
      ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
  }
  ImGui::End();
  if (!first_frame_) view_.panel_forced = false;  // the tab bar applies a selection a frame late
  first_frame_ = false;
}

}  // namespace twinfer::viz
