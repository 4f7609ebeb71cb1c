// Everything the user can change about what is shown, in one plain struct (as Tracy keeps its
// view options): panels read and write it, nothing else holds view state. The trace model stays
// in viz/model and knows nothing of it.
#pragma once
#include <cstdint>
#include <limits>

namespace twinfer::viz {

enum class Panel : int { timeline, kv, requests, metrics, compare, live, count };
const char* panel_name(Panel p);  // the --panel spelling: "timeline", "kv", ...

struct TimelineView {
  double t0 = 0, t1 = 0;    // visible time range, seconds; t1 <= t0 means "fit the run"
  float row_height = 11.0f;
  bool only_visible = true;  // list only requests alive in [t0, t1]
};

struct KvView {
  double t = std::numeric_limits<double>::infinity();  // scrub time; inf = peak KV usage
  bool playing = false;
  float play_speed = 1.0f;  // steps per frame while playing
  bool show_host = true;
  bool show_ref_counts = true;
};

struct RequestsView {
  char filter[64] = {};  // substring of the id or error text
  int status = -1;       // -1 all, else a SeqStatus value
  bool only_preempted = false;
};

struct MetricsView {
  bool log_x_cdf = true;  // CDF latency axis on a log scale
};

struct ViewOptions {
  Panel panel = Panel::timeline;
  bool panel_forced = false;  // --panel: select that tab on the first frame
  int run = 0;                // loaded run shown by the single-run panels
  int compare_a = 0, compare_b = 1;
  int32_t selected = -1;      // selected request (row in RunData::requests), shared by panels
  TimelineView timeline;
  KvView kv;
  RequestsView requests;
  MetricsView metrics;
};

}  // namespace twinfer::viz
