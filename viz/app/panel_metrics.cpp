// Metrics: queue lengths, KV usage and throughput over time (one min/max segment per pixel
// column), and the CDFs of TTFT, TPOT and e2e with their p50/p99 marks.
#include <algorithm>

#include "viz/app/panels.h"

namespace twinfer::viz {

void draw_metrics(RunSlot& run, ViewOptions& v) {
  const RunData& d = run.data;
  const RunSeries& s = run.series;
  const Summary& m = d.summary;
  ImGui::Text("%s   %lld requests (%lld finished, %lld failed)   %s   %.2f req/s   %.0f output tok/s   "
              "TTFT p50 %s ms p99 %s ms   preemptions %lld",
              d.label.c_str(), static_cast<long long>(m.requests), static_cast<long long>(m.finished),
              static_cast<long long>(m.failed), format_time(m.duration_s).c_str(), m.req_per_s, m.output_tok_per_s,
              format_ms(m.ttft_ms.p50).c_str(), format_ms(m.ttft_ms.p99).c_str(), static_cast<long long>(m.preemptions));
  ImGui::SameLine();
  ImGui::Checkbox("log latency axis", &v.metrics.log_x_cdf);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float w = avail.x, h = std::max(120.0f, (avail.y - 12) / 4.0f);
  const double x0 = d.t_begin, x1 = d.t_end;
  const float qmax = std::max(s.queue_max, 1.0f);
  plot_lines("queues", ImVec2(w, h), x0, x1, qmax * 1.05f,
             {{&s.t, &s.running, 0, 1, kRunColors[0], "running"},
              {&s.t, &s.waiting, 0, 1, IM_COL32(230, 200, 90, 255), "waiting"},
              {&s.t, &s.swapped, 0, 1, phase_color(Phase::swapped), "swapped"}},
             "seqs");
  plot_lines("KV cache (fraction of the GPU pool)", ImVec2(w, h), x0, x1, 1.0f,
             {{&s.t, &s.kv_used, 0, 1, kRunColors[1], "used"}, {&s.t, &s.kv_cached, 0, 1, kCachedColor, "cached"}},
             "of pool");
  const float tmax = std::max(s.tok_s_max, 1.0f);
  plot_lines("throughput (tokens processed per second)", ImVec2(w, h), x0, x1, tmax * 1.05f,
             {{nullptr, &s.prefill_tok_s, s.t0, s.bin_s, kPrefillColor, "prefill tok/s"},
              {nullptr, &s.decode_tok_s, s.t0, s.bin_s, kDecodeColor, "decode tok/s"}},
             "tok/s");
  const float cw = (w - 16) / 3;
  const ImVec2 cs(cw, std::max(100.0f, ImGui::GetContentRegionAvail().y));
  plot_cdf("TTFT CDF", cs, {{&s.ttft_ms, kRunColors[0], "TTFT"}}, v.metrics.log_x_cdf);
  ImGui::SameLine();
  plot_cdf("TPOT CDF", cs, {{&s.tpot_ms, kRunColors[0], "TPOT"}}, v.metrics.log_x_cdf);
  ImGui::SameLine();
  plot_cdf("e2e CDF", cs, {{&s.e2e_ms, kRunColors[0], "e2e"}}, v.metrics.log_x_cdf);
}

}  // namespace twinfer::viz
