#include "viz/app/panel_live.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "viz/app/panels.h"

namespace twinfer::viz {

namespace {

const char* kExplanation =
    "What you see: requests arrive (Poisson), wait in the queue, get KV blocks and are prefilled "
    "(orange), then decode one token per step (blue). Every step the scheduler packs as many "
    "sequences as --max-num-seqs and the token budget allow (continuous batching). Each cell of "
    "the block map is one KV block of --block-size tokens, coloured by the request holding it. "
    "When the pool runs out, the last-arrived running request is preempted (red): with recompute "
    "its blocks are freed and it prefills again later; with swap they move to the host pool "
    "(purple) and come back when blocks free up. Chunked prefill splits long prompts so decodes "
    "keep flowing. Shrink the pool or raise the rate to see preemption; change a knob and Restart.";

template <size_t N>
bool combo_str(const char* label, std::string& value, const char* const (&items)[N]) {
  int cur = 0;
  for (size_t i = 0; i < N; ++i)
    if (value == items[i]) cur = static_cast<int>(i);
  ImGui::SetNextItemWidth(120);
  if (!ImGui::Combo(label, &cur, items, static_cast<int>(N))) return false;
  value = items[cur];
  return true;
}

}  // namespace

LivePanel::LivePanel(RunConfig cfg) : edit_(std::move(cfg)) {
  view_.panel = Panel::live;
  view_.timeline.row_height = 6;
  restart();
}

void LivePanel::restart() {
  sim_.reset();
  slot_.reset();
  slot_steps_ = -1;
  error_.clear();
  try {
    sim_ = std::make_unique<LiveSim>(edit_);
    active_ = edit_;
  } catch (const std::exception& e) {
    error_ = e.what();
    std::fprintf(stderr, "twinfer-viz --live: %s\n", e.what());
    return;
  }
  view_.selected = -1;
  refresh();
}

void LivePanel::refresh() {
  if (!sim_ || sim_->steps() == slot_steps_) return;
  slot_ = make_slot(sim_->snapshot("live"));
  slot_steps_ = sim_->steps();
}

void LivePanel::controls() {
  ImGui::TextUnformatted("engine (applies on Restart)");
  EngineConfig& e = edit_.engine;
  WorkloadConfig& w = edit_.workload;
  const char* const sizes[] = {"8", "16", "32", "64"};
  std::string bs = std::to_string(e.block_size);
  if (combo_str("block size", bs, sizes)) e.block_size = std::stoi(bs);
  ImGui::SetNextItemWidth(120);
  ImGui::SliderInt("max-num-seqs", &e.max_num_seqs, 1, 256);
  ImGui::SetNextItemWidth(120);
  ImGui::SliderInt("KV pool blocks", &e.num_gpu_blocks_override, 64, 4096, "%d", ImGuiSliderFlags_Logarithmic);
  ImGui::Checkbox("chunked prefill", &e.enable_chunked_prefill);
  ImGui::Checkbox("prefix caching", &e.enable_prefix_caching);
  const char* const modes[] = {"recompute", "swap"};
  combo_str("preemption", e.preemption_mode, modes);
  const char* const policies[] = {"fcfs", "priority", "sjf", "lpm"};
  combo_str("scheduling", e.scheduling_policy, policies);
  ImGui::TextUnformatted("workload");
  float rate = static_cast<float>(w.rate);
  ImGui::SetNextItemWidth(120);
  if (ImGui::SliderFloat("req/s", &rate, 0.5f, 100.0f, "%.1f", ImGuiSliderFlags_Logarithmic)) w.rate = rate;
  int n = static_cast<int>(w.num_requests);
  ImGui::SetNextItemWidth(120);
  if (ImGui::SliderInt("requests", &n, 10, 1000, "%d", ImGuiSliderFlags_Logarithmic)) w.num_requests = w.max_requests = n;
  const bool changed = edit_.to_json().dump() != active_.to_json().dump();
  if (ImGui::Button(changed ? "Restart *" : "Restart")) restart();
  if (changed && ImGui::IsItemHovered()) ImGui::SetTooltip("knobs changed: restart to apply them");
  ImGui::Separator();
  if (ImGui::Button(playing_ ? "Pause" : "Play")) playing_ = !playing_;
  ImGui::SameLine();
  if (ImGui::Button("Step") && sim_) {
    playing_ = false;
    sim_->step();
  }
  ImGui::SetNextItemWidth(120);
  ImGui::SliderFloat("speed", &speed_, 0.02f, 20.0f, "%.2f sim s/s", ImGuiSliderFlags_Logarithmic);
  ImGui::SetNextItemWidth(120);
  ImGui::SliderFloat("window", &window_s_, 0.5f, 60.0f, "%.1f s", ImGuiSliderFlags_Logarithmic);
  ImGui::Separator();
  ImGui::PushTextWrapPos(ImGui::GetCursorPosX() + 250);
  ImGui::TextDisabled("%s", kExplanation);
  ImGui::PopTextWrapPos();
}

void LivePanel::draw(bool fixed_dt) {
  if (sim_ && playing_ && !sim_->done()) {
    const double dt = fixed_dt ? 1.0 / 60.0 : std::min(0.1, static_cast<double>(ImGui::GetIO().DeltaTime));
    sim_->advance_to(sim_->now() + dt * speed_);
  }
  refresh();
  ImGui::BeginChild("live_controls", ImVec2(270, 0), true);
  controls();
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("live_view", ImVec2(0, 0), false);
  if (!error_.empty()) {
    ImGui::TextColored(ImVec4(1, 0.4f, 0.4f, 1), "cannot start: %s", error_.c_str());
    ImGui::TextDisabled("change the knobs and press Restart");
  } else if (slot_) {
    const RunData& d = slot_->data;
    const StepRow* last = d.steps.empty() ? nullptr : &d.steps.back();
    size_t finished = 0;
    for (const RequestRow& q : d.requests) finished += q.status == SeqStatus::finished;
    ImGui::Text("t = %s   step %lld   running %d  waiting %d  swapped %d   finished %zu / %zu   preemptions %lld%s",
                format_time(sim_->now()).c_str(), static_cast<long long>(sim_->steps()), last ? last->running : 0,
                last ? last->waiting : 0, last ? last->swapped : 0, finished, sim_->num_requests(),
                static_cast<long long>(d.summary.preemptions), sim_->done() ? "   (done)" : "");
    view_.kv.t = sim_->now();
    view_.timeline.t1 = std::max(sim_->now(), 1e-3);
    view_.timeline.t0 = std::max(d.t_begin, view_.timeline.t1 - window_s_);
    const float h = ImGui::GetContentRegionAvail().y;
    ImGui::BeginChild("live_kv", ImVec2(0, h * 0.5f), false);
    draw_kvmap(*slot_, view_, true);
    ImGui::EndChild();
    draw_timeline(*slot_, view_, 0);
  }
  ImGui::EndChild();
}

}  // namespace twinfer::viz
