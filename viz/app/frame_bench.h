// Frame-time measurement for `twinfer-viz --bench-frames N` and `--stats`: each frame split into
// the UI build (ImGui::NewFrame .. ImGui::Render: our panels plus ImGui), the GL render
// (glClear + ImGui_ImplOpenGL3_RenderDrawData, finished with glFinish so a software rasterizer's
// deferred work is charged here) and the present (glfwSwapBuffers), with the draw data's sizes.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

struct ImDrawData;

namespace twinfer::viz {

struct FrameSample {
  double app_ms = 0, render_ms = 0, swap_ms = 0, total_ms = 0;
  int vertices = 0, indices = 0, draw_calls = 0, draw_lists = 0;
};

// Vertex, index, command-list and draw-call counts of one frame's draw data.
void count_draw_data(const ImDrawData* dd, FrameSample& s);

class FrameBench {
 public:
  void add(const FrameSample& s) { samples_.push_back(s); }
  size_t size() const { return samples_.size(); }
  // Median / p95 / max per part, fps at the median and p95 frame, and the median draw counts.
  // `what` heads the report (panel, size, renderer).
  void report(std::FILE* out, const std::string& what) const;

 private:
  std::vector<FrameSample> samples_;
};

}  // namespace twinfer::viz
