// KV-cache events: enough to replay the block map exactly (docs/trace-format.md, kv_events.csv).
#pragma once
#include <cstdint>
#include <vector>

#include "core/policy.h"

namespace twinfer {

enum class KvEventType : uint8_t {
  allocate,    // fresh blocks appended to seq's table (blocks)
  share,       // prefix-cache hit: cached blocks appended to seq's table, ref count +1 (blocks)
  free,        // seq dropped its references (blocks); those reaching 0 become free or cached
  cache,       // blocks became full and registered in the prefix cache under their hash
  evict,       // cached unreferenced blocks reclaimed for reuse (blocks)
  cow,         // copy-on-write: src (blocks) copied into dst (blocks2), seq now owns dst
  fork,        // seq (child) now references parent's blocks (blocks); parent in `other`
  swap_out,    // GPU blocks (blocks) copied to host blocks (blocks2) and freed
  swap_in,     // host blocks (blocks2) copied back into GPU blocks (blocks)
};
const char* kv_event_name(KvEventType t);

struct KvEvent {
  double time = 0.0;
  int64_t step = 0;
  KvEventType type = KvEventType::allocate;
  RequestId seq = -1;
  RequestId other = -1;
  // Offsets into KvEventLog::ids: blocks = ids[b0, b1), blocks2 = ids[b1, b2).
  uint32_t b0 = 0, b1 = 0, b2 = 0;
};

// Flat, append-only log: one vector of events and one of block ids, so a whole trace costs two
// allocations' worth of growth rather than one per event.
class KvEventLog {
 public:
  bool enabled = true;
  double time = 0.0;  // stamped onto events; the engine sets it before each step
  int64_t step = 0;
  std::vector<KvEvent> events;
  std::vector<BlockId> ids;

  void add(KvEventType t, RequestId seq, const BlockId* blocks, size_t n,
           const BlockId* blocks2 = nullptr, size_t n2 = 0, RequestId other = -1) {
    if (!enabled) return;
    KvEvent e;
    e.time = time;
    e.step = step;
    e.type = t;
    e.seq = seq;
    e.other = other;
    e.b0 = static_cast<uint32_t>(ids.size());
    ids.insert(ids.end(), blocks, blocks + n);
    e.b1 = static_cast<uint32_t>(ids.size());
    if (n2) ids.insert(ids.end(), blocks2, blocks2 + n2);
    e.b2 = static_cast<uint32_t>(ids.size());
    events.push_back(e);
  }
};

}  // namespace twinfer
