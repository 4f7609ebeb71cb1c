// Plot-ready views of a run for the Metrics and Compare panels: per-step counters as columns,
// binned throughput, sorted latency samples for CDFs, column min/max downsampling so a 500k-step
// series draws as one line per pixel column, and the summary comparison table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "viz/model/run_data.h"

namespace twinfer::viz {

struct RunSeries {
  // Per step (steps.csv order): x = step start, seconds. KV counts are fractions of the pool.
  std::vector<double> t;
  std::vector<float> running, waiting, swapped, kv_used, kv_cached;
  // Throughput in `bins` equal bins over [t0, t0 + bins * bin_s): tokens processed per second
  // (prefill and decode separately) and requests finished per second.
  double t0 = 0, bin_s = 1;
  std::vector<float> prefill_tok_s, decode_tok_s, finished_req_s;
  // Peaks for the plots' y axes, kept here so a frame does not rescan 500k steps.
  float running_max = 0;
  float queue_max = 0;  // of running, waiting, swapped
  float tok_s_max = 0;  // of prefill_tok_s, decode_tok_s
  // Sorted latency samples of finished requests, milliseconds.
  std::vector<float> ttft_ms, tpot_ms, e2e_ms, queue_ms;
};

RunSeries build_series(const RunData& d, int bins = 240);

// Value of a sorted sample at quantile q in [0, 1] (linear interpolation); NaN when empty.
double sorted_quantile(const std::vector<float>& sorted, double q);

// Downsampled view of a step function (x sorted, value held until the next sample) over
// [x0, x1] in `px` columns: min and max of the values in effect in each column.
struct ColumnRange {
  float lo = 0, hi = 0;
  bool valid = false;  // false: the column lies before the first sample or after the run
};
void column_ranges(const std::vector<double>& x, const std::vector<float>& v, double x0,
                   double x1, int px, std::vector<ColumnRange>& out);

// One line of the Compare table. `lower_is_better` colours the delta.
struct CompareRow {
  std::string metric;
  double a = 0, b = 0;
  bool lower_is_better = true;
  double delta() const { return b - a; }
  double rel() const;  // (b - a) / |a|; NaN when a is 0
};
std::vector<CompareRow> compare_summaries(const Summary& a, const Summary& b);

}  // namespace twinfer::viz
