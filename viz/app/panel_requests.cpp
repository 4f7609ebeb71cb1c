// Requests: every request of the run in a sortable, filterable table. The sorted and filtered
// order is rebuilt only when the sort spec or a filter changes; the clipper draws only the rows
// on screen, so a 20k-request run scrolls at frame rate.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "viz/app/panels.h"

namespace twinfer::viz {

namespace {

enum Col { kId, kStatus, kPrio, kPrompt, kOutput, kArrival, kTtft, kTpot, kE2e, kQueue, kPreempt, kHit, kError, kNumCols };

double sort_key(const RequestRow& q, int col) {
  switch (col) {
    case kId: return static_cast<double>(q.id);
    case kStatus: return static_cast<double>(q.status);
    case kPrio: return q.priority;
    case kPrompt: return q.prompt_len;
    case kOutput: return q.output_len;
    case kArrival: return q.arrival;
    case kTtft: return q.ttft;
    case kTpot: return q.tpot;
    case kE2e: return q.e2e;
    case kQueue: return q.queue;
    case kPreempt: return q.num_preemptions;
    case kHit: return q.prefix_hit_tokens;
    default: return 0;
  }
}

struct OrderCache {
  const RunSlot* run = nullptr;
  std::string filter;
  int status = -2;
  bool only_preempted = false;
  int sort_col = -1;
  bool descending = false;
  std::vector<int32_t> order;
};

bool matches(const RequestRow& q, const RequestsView& f) {
  if (f.status >= 0 && static_cast<int>(q.status) != f.status) return false;
  if (f.only_preempted && q.num_preemptions == 0) return false;
  if (!f.filter[0]) return true;
  const std::string id = std::to_string(q.id);
  return id.find(f.filter) != std::string::npos || q.error.find(f.filter) != std::string::npos;
}

}  // namespace

void draw_requests(RunSlot& run, ViewOptions& v) {
  const RunData& d = run.data;
  RequestsView& f = v.requests;
  ImGui::SetNextItemWidth(160);
  ImGui::InputTextWithHint("##filter", "id or error text", f.filter, sizeof f.filter);
  ImGui::SameLine();
  const char* statuses[] = {"all", "waiting", "running", "swapped", "finished", "failed"};
  int st = f.status + 1;
  ImGui::SetNextItemWidth(100);
  if (ImGui::Combo("status", &st, statuses, 6)) f.status = st - 1;
  ImGui::SameLine();
  ImGui::Checkbox("preempted only", &f.only_preempted);

  static OrderCache cache;
  const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY |
                                ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_Resizable |
                                ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_Hideable;
  const bool filter_changed = cache.run != &run || cache.filter != f.filter || cache.status != f.status ||
                              cache.only_preempted != f.only_preempted;
  if (filter_changed) {
    cache.order.clear();
    for (size_t i = 0; i < d.requests.size(); ++i)
      if (matches(d.requests[i], f)) cache.order.push_back(static_cast<int32_t>(i));
  }
  ImGui::SameLine();
  ImGui::TextDisabled("%zu of %zu requests   click a row to select it in the other panels", cache.order.size(),
                      d.requests.size());
  if (!ImGui::BeginTable("requests", kNumCols, flags, ImGui::GetContentRegionAvail())) return;
  ImGui::TableSetupScrollFreeze(1, 1);
  ImGui::TableSetupColumn("id", ImGuiTableColumnFlags_DefaultSort);
  ImGui::TableSetupColumn("status");
  ImGui::TableSetupColumn("prio");
  ImGui::TableSetupColumn("prompt");
  ImGui::TableSetupColumn("output");
  ImGui::TableSetupColumn("arrival");
  ImGui::TableSetupColumn("TTFT ms");
  ImGui::TableSetupColumn("TPOT ms");
  ImGui::TableSetupColumn("e2e ms");
  ImGui::TableSetupColumn("queue ms");
  ImGui::TableSetupColumn("preempt");
  ImGui::TableSetupColumn("prefix hit");
  ImGui::TableSetupColumn("error", ImGuiTableColumnFlags_NoSort | ImGuiTableColumnFlags_WidthStretch);
  ImGui::TableHeadersRow();

  ImGuiTableSortSpecs* specs = ImGui::TableGetSortSpecs();
  int col = kId;
  bool desc = false;
  if (specs && specs->SpecsCount > 0) {
    col = specs->Specs[0].ColumnIndex;
    desc = specs->Specs[0].SortDirection == ImGuiSortDirection_Descending;
  }
  if (filter_changed || col != cache.sort_col || desc != cache.descending) {
    // NaN (no sample) sorts last in either direction; ties keep arrival order.
    std::stable_sort(cache.order.begin(), cache.order.end(), [&](int32_t x, int32_t y) {
      const double a = sort_key(d.requests[static_cast<size_t>(x)], col);
      const double b = sort_key(d.requests[static_cast<size_t>(y)], col);
      if (std::isnan(a) || std::isnan(b)) return !std::isnan(a) && std::isnan(b);
      return desc ? a > b : a < b;
    });
    cache.sort_col = col;
    cache.descending = desc;
    if (specs) specs->SpecsDirty = false;
  }
  cache.run = &run;
  cache.filter = f.filter;
  cache.status = f.status;
  cache.only_preempted = f.only_preempted;

  ImGuiListClipper clip;
  clip.Begin(static_cast<int>(cache.order.size()));
  while (clip.Step()) {
    for (int k = clip.DisplayStart; k < clip.DisplayEnd; ++k) {
      const int32_t row = cache.order[static_cast<size_t>(k)];
      const RequestRow& q = d.requests[static_cast<size_t>(row)];
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      char label[32];
      std::snprintf(label, sizeof label, "%lld", static_cast<long long>(q.id));
      if (ImGui::Selectable(label, row == v.selected, ImGuiSelectableFlags_SpanAllColumns)) v.selected = row;
      ImGui::TableNextColumn();
      ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(status_color(q.status)), "%s", seq_status_name(q.status));
      ImGui::TableNextColumn();
      ImGui::Text("%d", q.priority);
      ImGui::TableNextColumn();
      ImGui::Text("%d", q.prompt_len);
      ImGui::TableNextColumn();
      ImGui::Text("%d", q.output_len);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(format_time(q.arrival).c_str());
      for (double ms : {q.ttft * 1e3, q.tpot * 1e3, q.e2e * 1e3, q.queue * 1e3}) {
        ImGui::TableNextColumn();
        ImGui::TextUnformatted(format_ms(ms).c_str());
      }
      ImGui::TableNextColumn();
      if (q.num_preemptions) ImGui::TextColored(ImVec4(1, 0.45f, 0.45f, 1), "%d", q.num_preemptions);
      else ImGui::TextDisabled("0");
      ImGui::TableNextColumn();
      ImGui::Text("%d", q.prefix_hit_tokens);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(q.error.c_str());
    }
  }
  ImGui::EndTable();
}

}  // namespace twinfer::viz
