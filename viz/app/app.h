// The application: the loaded runs, load errors, the view options and the tab bar of panels.
// Knows nothing about windows or GL (main.cpp owns those), so one frame is one call to frame().
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "viz/app/draw_util.h"
#include "viz/app/panel_live.h"
#include "viz/app/view.h"

namespace twinfer::viz {

struct AppOptions {
  std::vector<std::string> run_dirs;
  bool live = false;         // open on the Live panel with live_config
  RunConfig live_config;
  bool panel_given = false;  // --panel
  Panel panel = Panel::timeline;
  bool fixed_dt = false;     // screenshots: the live simulation advances 1/60 s per frame
  ViewOptions view;          // initial view (--time, --at); panel fields are set from the above
  long long select_id = -1;  // --select: request id to select in the first run
  bool bench_motion = false; // --bench-motion: change the view every frame (see App::frame)
};

class App {
 public:
  // Loads every run folder; a folder that fails is reported (window and stderr), never fatal.
  explicit App(AppOptions opt);
  void frame();

  size_t num_runs() const { return runs_.size(); }
  const std::vector<std::string>& errors() const { return errors_; }
  Panel panel() const { return view_.panel; }  // the tab shown last frame
  double total_load_s() const;

 private:
  AppOptions opt_;
  std::vector<std::unique_ptr<RunSlot>> runs_;
  std::vector<std::string> errors_;    // runs that could not be opened
  std::vector<std::string> warnings_;  // opened, with problems worth knowing
  std::unique_ptr<LivePanel> live_;
  ViewOptions view_;
  bool first_frame_ = true;
  long frame_count_ = 0;
  Panel forced_ = Panel::timeline;  // tab selected at start (a drawn tab overwrites view_.panel)

  void header();
  void no_run_message();
  void compare_pickers();
};

}  // namespace twinfer::viz
