// Live: the simulator running inside the app. Play / pause / single step / speed; the engine
// knobs a class asks about (block size, max-num-seqs, chunked prefill, preemption mode,
// scheduling policy, pool size, load) apply on Restart. The KV map and timeline of the run so far
// are redrawn from a fresh snapshot after every step.
#pragma once
#include <memory>
#include <string>

#include "core/config.h"
#include "viz/app/draw_util.h"
#include "viz/app/view.h"
#include "viz/live/live_sim.h"

namespace twinfer::viz {

class LivePanel {
 public:
  explicit LivePanel(RunConfig cfg);
  // `fixed_dt`: advance as if exactly 1/60 s passed each frame (screenshots, benchmarks).
  void draw(bool fixed_dt);
  const std::string& error() const { return error_; }

 private:
  RunConfig edit_;    // knobs as the user set them
  RunConfig active_;  // the config the running simulation was built from
  std::unique_ptr<LiveSim> sim_;
  std::unique_ptr<RunSlot> slot_;
  int64_t slot_steps_ = -1;
  std::string error_;
  bool playing_ = true;
  float speed_ = 0.5f;     // simulated seconds per wall-clock second
  float window_s_ = 4.0f;  // timeline shows the last window_s_ simulated seconds
  ViewOptions view_;

  void restart();
  void refresh();
  void controls();
};

}  // namespace twinfer::viz
