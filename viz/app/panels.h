// One function per panel (one source file each). Panels draw from a RunSlot and read and write
// only the ViewOptions they are given.
#pragma once
#include <imgui.h>

#include "viz/app/draw_util.h"
#include "viz/app/view.h"

namespace twinfer::viz {

// Engine steps as bars and request lifetimes as rows; `rows_height` 0 fills the window.
void draw_timeline(RunSlot& run, ViewOptions& v, float rows_height = 0);
// The KV block map at the scrub time; `compact` drops the side panel's event list (Live panel).
void draw_kvmap(RunSlot& run, ViewOptions& v, bool compact = false);
void draw_requests(RunSlot& run, ViewOptions& v);
void draw_metrics(RunSlot& run, ViewOptions& v);
void draw_compare(RunSlot& a, RunSlot& b, ViewOptions& v);

// Fits the timeline to the run when its range is unset.
void timeline_fit(const RunData& d, TimelineView& t);

}  // namespace twinfer::viz
