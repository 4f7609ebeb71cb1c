// Requests: every request of the run in a sortable, filterable table. The sorted and filtered
// order is rebuilt only when the sort spec or a filter changes; the clipper draws only the rows
// on screen, so a 20k-request run scrolls at frame rate.
//
// Rendering: the row shading and the cell text go to a CPU layer (pixel_layer.h) blitted under
// the table, not to ImGui's draw list. Under llvmpipe the ~2.6k glyph quads and the
// half-screen of translucent row stripes were ~8 ms of GL render at 1600x1000; as memory
// writes they are well under that, and a still table skips even the upload. ImGui still lays
// the table out (every cell is sized as its text), draws the header, borders, scrollbar and the
// hover / selection highlight, and the hovered and selected rows' text, which must sit above
// the highlight.
#include <imgui_internal.h>  // table and window state: row position, cell clip, text baseline

#include <algorithm>
#include <cmath>
#include <cstring>

#include "viz/app/panels.h"
#include "viz/app/pixel_layer.h"

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

// What the frame puts into the layer, recorded while ImGui lays the table out and drawn at the
// end only when it differs from the last frame's (a still table, the common case, then costs
// neither the raster nor the texture upload). Plain floats and words: no padding, so a frame's
// list compares with memcmp.
struct LayerOp {
  float clip[4];
  float rect[4];  // fill: the rectangle; text: the position in rect[0], rect[1]
  ImU32 col;
  uint32_t text_begin, text_end;  // into LayerOps::text; equal for a fill
};
static_assert(sizeof(LayerOp) == 11 * 4, "LayerOp must have no padding: frames compare with memcmp");

struct LayerOps {
  float rect[4] = {};
  std::vector<LayerOp> ops;
  std::string text;

  void clear(ImVec2 a, ImVec2 b) {
    rect[0] = a.x, rect[1] = a.y, rect[2] = b.x, rect[3] = b.y;
    ops.clear();
    text.clear();
  }
  void fill(const ImRect& clip, ImVec2 a, ImVec2 b, ImU32 col) {
    const auto n = static_cast<uint32_t>(text.size());
    ops.push_back({{clip.Min.x, clip.Min.y, clip.Max.x, clip.Max.y}, {a.x, a.y, b.x, b.y}, col, n, n});
  }
  void add_text(const ImRect& clip, ImVec2 pos, ImU32 col, const char* b, const char* e) {
    const auto n = static_cast<uint32_t>(text.size());
    text.append(b, e);
    ops.push_back({{clip.Min.x, clip.Min.y, clip.Max.x, clip.Max.y}, {pos.x, pos.y, 0, 0}, col, n,
                   static_cast<uint32_t>(text.size())});
  }
  bool same_as(const LayerOps& o) const {
    return std::memcmp(rect, o.rect, sizeof rect) == 0 && ops.size() == o.ops.size() && text == o.text &&
           (ops.empty() || std::memcmp(ops.data(), o.ops.data(), ops.size() * sizeof(LayerOp)) == 0);
  }
  void draw(PixelLayer& px, ImU32 bg) const {
    px.clear(bg);
    for (const LayerOp& op : ops) {
      px.set_clip(ImVec2(op.clip[0], op.clip[1]), ImVec2(op.clip[2], op.clip[3]));
      if (op.text_begin == op.text_end) px.fill(op.rect[0], op.rect[1], op.rect[2], op.rect[3], op.col);
      else px.text(ImVec2(op.rect[0], op.rect[1]), op.col, text.data() + op.text_begin, text.data() + op.text_end);
    }
  }
};

// One cell's text, laid out exactly as ImGui::TextUnformatted lays it out; drawn into the layer,
// or by ImGui (`on_top`) on rows whose highlight would otherwise cover it.
void cell_text(LayerOps& px, bool on_top, ImU32 col, const char* b, const char* e = nullptr) {
  if (!e) e = b + std::strlen(b);
  if (on_top) {
    ImGui::PushStyleColor(ImGuiCol_Text, col);
    ImGui::TextUnformatted(b, e);
    ImGui::PopStyleColor();
    return;
  }
  ImGuiWindow* w = ImGui::GetCurrentWindow();
  const ImVec2 pos(w->DC.CursorPos.x, w->DC.CursorPos.y + w->DC.CurrLineTextBaseOffset);
  const ImVec2 size = ImGui::CalcTextSize(b, e);
  const ImRect bb(pos, ImVec2(pos.x + size.x, pos.y + size.y));
  ImGui::ItemSize(size, 0.0f);
  if (!ImGui::ItemAdd(bb, 0)) return;
  px.add_text(w->ClipRect, pos, col, b, e);
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
  // No ImGuiTableFlags_RowBg: the stripes are drawn into the layer (below).
  const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_ScrollY |
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
  // The layer sits in this window's draw list, so the table's own window (a child, drawn after
  // it, with no background of its own) puts the header, borders and highlights over it.
  const ImVec2 table_a = ImGui::GetCursorScreenPos(), table_size = ImGui::GetContentRegionAvail();
  const ImVec4 wbg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
  const ImVec2 table_b(table_a.x + table_size.x, table_a.y + table_size.y);
  const ImU32 layer_bg = ImGui::ColorConvertFloat4ToU32(ImVec4(wbg.x, wbg.y, wbg.z, 1));
  PixelLayer& layer = layer_for("requests_layer");
  layer.place(ImGui::GetWindowDrawList(), table_a, table_b);
  static LayerOps px, last;  // this frame's layer content and the last one drawn
  px.clear(table_a, table_b);
  if (!ImGui::BeginTable("requests", kNumCols, flags, table_size)) {
    layer.clear(layer_bg);
    last.clear(ImVec2(0, 0), ImVec2(0, 0));
    return;
  }
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

  // Stripes as ImGuiTableFlags_RowBg draws them: every odd data row (the clipper keeps the
  // count for skipped rows, the header does not count) over the table's work rect.
  const ImU32 stripe = ImGui::GetColorU32(ImGuiCol_TableRowBgAlt), plain = ImGui::GetColorU32(ImGuiCol_TableRowBg);
  const ImU32 text_col = ImGui::GetColorU32(ImGuiCol_Text), disabled_col = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  const ImU32 preempt_col = ImGui::GetColorU32(ImVec4(1, 0.45f, 0.45f, 1));
  ImGuiTable* table = ImGui::GetCurrentTable();
  const float row_h = ImGui::GetTextLineHeight() + 2 * table->CellPaddingY;
  ImGuiListClipper clip;
  clip.Begin(static_cast<int>(cache.order.size()));
  char buf[64];
  while (clip.Step()) {
    for (int k = clip.DisplayStart; k < clip.DisplayEnd; ++k) {
      const int32_t row = cache.order[static_cast<size_t>(k)];
      const RequestRow& q = d.requests[static_cast<size_t>(row)];
      ImGui::TableNextRow();
      px.fill(table->BgClipRect, ImVec2(table->WorkRect.Min.x, table->RowPosY1),
              ImVec2(table->WorkRect.Max.x, table->RowPosY1 + row_h), (k & 1) ? stripe : plain);
      ImGui::TableNextColumn();
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(q.id));
      const ImVec2 label_pos = ImGui::GetCursorScreenPos();
      ImGui::PushID(row);
      // Unlabelled (the label goes to the layer below) but sized as before: with no width given
      // a spanning selectable takes the row's width whatever its label.
      if (ImGui::Selectable("##row", row == v.selected, ImGuiSelectableFlags_SpanAllColumns)) v.selected = row;
      ImGui::PopID();
      // The highlight covers the row: its text goes above it, through ImGui.
      const bool on_top = row == v.selected || ImGui::IsItemHovered() || ImGui::IsItemActive();
      if (on_top) ImGui::GetWindowDrawList()->AddText(label_pos, text_col, buf);
      else px.add_text(ImGui::GetCurrentWindow()->ClipRect, label_pos, text_col, buf, buf + std::strlen(buf));
      ImGui::TableNextColumn();
      cell_text(px, on_top, status_color(q.status), seq_status_name(q.status));
      for (int n : {q.priority, q.prompt_len, q.output_len}) {
        ImGui::TableNextColumn();
        std::snprintf(buf, sizeof buf, "%d", n);
        cell_text(px, on_top, text_col, buf);
      }
      ImGui::TableNextColumn();
      cell_text(px, on_top, text_col, format_time(q.arrival).c_str());
      for (double ms : {q.ttft * 1e3, q.tpot * 1e3, q.e2e * 1e3, q.queue * 1e3}) {
        ImGui::TableNextColumn();
        cell_text(px, on_top, text_col, format_ms(ms).c_str());
      }
      ImGui::TableNextColumn();
      std::snprintf(buf, sizeof buf, "%d", q.num_preemptions);
      cell_text(px, on_top, q.num_preemptions ? preempt_col : disabled_col, buf);
      ImGui::TableNextColumn();
      std::snprintf(buf, sizeof buf, "%d", q.prefix_hit_tokens);
      cell_text(px, on_top, text_col, buf);
      ImGui::TableNextColumn();
      cell_text(px, on_top, text_col, q.error.data(), q.error.data() + q.error.size());
    }
  }
  ImGui::EndTable();
  if (!px.same_as(last) || !layer.keep()) {
    px.draw(layer, layer_bg);
    std::swap(px, last);
  }
}

}  // namespace twinfer::viz
