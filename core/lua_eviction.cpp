// Prefix-cache eviction in Lua, in one of two forms:
//   key(block) -> number: called once when a block enters the candidate set; the block with the
//     smallest key is evicted first, ties in insertion order (so key = last_access is exactly
//     LRU). C++ keeps a binary heap with lazy deletion: erase only bumps a per-block stamp and
//     stale heap entries are skipped (and compacted away when they outnumber live ones).
//   evict(candidates) -> block id: called at each eviction with every candidate; O(set size)
//     per eviction, for prototyping policies a key cannot express.
// block = { id, access_count, last_access }.
#include <algorithm>
#include <lua.hpp>
#include <vector>

#include "core/error.h"
#include "core/lua_policy.h"
#include "core/lua_policy_script.h"

namespace twinfer {
namespace {

using lua_policy::bad_result;
using lua_policy::Script;

// Fills the table at absolute index `view`; `keys` is the absolute index of the keys table.
void fill_block(lua_State* L, int view, int keys, BlockId b, uint64_t access_count, double last_access) {
  lua_rawgeti(L, keys, lua_policy::kId);
  lua_pushinteger(L, b);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, lua_policy::kAccessCount);
  lua_pushinteger(L, static_cast<lua_Integer>(access_count));
  lua_rawset(L, view);
  lua_rawgeti(L, keys, lua_policy::kLastAccess);
  lua_pushnumber(L, last_access);
  lua_rawset(L, view);
}

struct BlockKeyCall {
  int fn_ref = -1, view_ref = -1, keys_ref = -1;
  BlockId block = 0;
  uint64_t access_count = 0;
  double last_access = 0, result = 0;
};

int call_block_key(lua_State* L) {
  auto* c = static_cast<BlockKeyCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->view_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->keys_ref);
  fill_block(L, lua_gettop(L) - 1, lua_gettop(L), c->block, c->access_count, c->last_access);
  lua_pop(L, 1);  // keys
  lua_call(L, 1, 1);
  if (lua_type(L, -1) != LUA_TNUMBER)
    return bad_result(L, c->fn_ref, "key", lua_type_phrase(L, -1), "a number (smallest is evicted first)");
  c->result = lua_tonumber(L, -1);
  if (c->result != c->result) return bad_result(L, c->fn_ref, "key", "NaN", "a number (smallest is evicted first)");
  return 0;
}

struct Member {
  uint64_t access_count;
  double last_access;
};

struct EvictCall {
  int fn_ref = -1, list_ref = -1, pool_ref = -1, keys_ref = -1;
  const BlockId* ids = nullptr;     // the candidate set, [n]
  const Member* members = nullptr;  // indexed by block id
  const uint32_t* pos = nullptr;    // indexed by block id: position in ids + 1, 0 = absent
  size_t num_blocks = 0;            // size of members/pos
  size_t n = 0, listed = 0;
  BlockId result = -1;
};

int call_evict(lua_State* L) {
  auto* c = static_cast<EvictCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->list_ref);
  const int list = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->pool_ref);
  const int pool = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->keys_ref);
  const int keys = lua_gettop(L);
  for (size_t i = 1; i <= c->n; ++i) {
    const auto k = static_cast<lua_Integer>(i);
    if (lua_rawgeti(L, pool, k) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_createtable(L, 0, 3);
      lua_pushvalue(L, -1);
      lua_rawseti(L, pool, k);
    }
    const BlockId b = c->ids[i - 1];
    const Member& m = c->members[static_cast<size_t>(b)];
    fill_block(L, lua_gettop(L), keys, b, m.access_count, m.last_access);
    lua_rawseti(L, list, k);
  }
  for (size_t i = c->n + 1; i <= c->listed; ++i) {
    lua_pushnil(L);
    lua_rawseti(L, list, static_cast<lua_Integer>(i));
  }
  c->listed = c->n;
  lua_pop(L, 2);  // keys, pool
  lua_call(L, 1, 1);
  int isint = 0;
  const lua_Integer b = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
  if (!isint) return bad_result(L, c->fn_ref, "evict", lua_type_phrase(L, -1), "the id of one of the candidates");
  if (b < 0 || static_cast<size_t>(b) >= c->num_blocks || c->pos[b] == 0) {
    lua_pushfstring(L, "block id %I, which is not a candidate", b);
    return bad_result(L, c->fn_ref, "evict", lua_tostring(L, -1), "the id of one of the candidates");
  }
  c->result = static_cast<BlockId>(b);
  return 0;
}

class LuaEviction final : public EvictionPolicy {
 public:
  LuaEviction(const std::string& file, const LuaLimits& limits)
      : s_(file, "eviction policy", limits) {
    key_.fn_ref = s_.function_ref("key", "key(block) -> number");
    evict_.fn_ref = s_.function_ref("evict", "evict(candidates) -> block id");
    if (key_.fn_ref < 0 && evict_.fn_ref < 0)
      s_.missing("key", "key(block) -> number (smallest evicted first) or evict(candidates) -> block id");
    key_.keys_ref = evict_.keys_ref = s_.keys_ref();
    if (key_.fn_ref >= 0) {
      key_.view_ref = s_.new_table_ref();
    } else {
      evict_.list_ref = s_.new_table_ref();
      evict_.pool_ref = s_.new_table_ref();
    }
  }

  std::string name() const override { return "lua:" + s_.file(); }

  void insert(BlockId b, uint64_t access_count, double last_access) override {
    const size_t i = static_cast<size_t>(b);
    if (i >= stamp_.size()) grow(i + 1);
    if (key_.fn_ref >= 0) {
      key_.block = b;
      key_.access_count = access_count;
      key_.last_access = last_access;
      const int status = s_.sandbox().protected_call(call_block_key, &key_, 0, 0);
      if (status != LUA_OK) s_.fail(status);
      if (stamp_[i] == 0) ++size_;
      stamp_[i] = ++seq_;
      heap_.push_back({key_.result, seq_, b});
      std::push_heap(heap_.begin(), heap_.end(), Later{});
      return;
    }
    members_[i] = {access_count, last_access};
    if (pos_[i] == 0) {
      ids_.push_back(b);
      pos_[i] = static_cast<uint32_t>(ids_.size());
    }
  }

  void erase(BlockId b) override {
    const size_t i = static_cast<size_t>(b);
    if (b < 0 || i >= stamp_.size()) return;
    if (key_.fn_ref >= 0) {
      if (stamp_[i] == 0) return;
      stamp_[i] = 0;
      --size_;
      if (heap_.size() > 64 && heap_.size() > 2 * size_) compact();
      return;
    }
    remove_member(b);
  }

  std::optional<BlockId> pop_victim() override {
    if (key_.fn_ref >= 0) {
      while (!heap_.empty()) {
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        const Entry e = heap_.back();
        heap_.pop_back();
        if (stamp_[static_cast<size_t>(e.block)] != e.seq) continue;  // erased or re-keyed
        stamp_[static_cast<size_t>(e.block)] = 0;
        --size_;
        return e.block;
      }
      return std::nullopt;
    }
    if (ids_.empty()) return std::nullopt;
    evict_.ids = ids_.data();
    evict_.n = ids_.size();
    evict_.members = members_.data();
    evict_.pos = pos_.data();
    evict_.num_blocks = pos_.size();
    const int status = s_.sandbox().protected_call(call_evict, &evict_, 0, 0);
    if (status != LUA_OK) s_.fail(status);
    remove_member(evict_.result);
    return evict_.result;
  }

  size_t size() const override { return key_.fn_ref >= 0 ? size_ : ids_.size(); }

 private:
  struct Entry {
    double key;
    uint64_t seq;  // insertion order breaks ties; also the validity stamp
    BlockId block;
  };
  // std heaps are max-heaps: "later" entries sink, so the front is the smallest (key, seq).
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.key != b.key ? a.key > b.key : a.seq > b.seq;
    }
  };

  void grow(size_t n) {
    const size_t cap = std::max(n, stamp_.size() * 2);
    stamp_.resize(cap, 0);
    members_.resize(cap, {0, 0.0});
    pos_.resize(cap, 0);
  }

  void compact() {
    std::erase_if(heap_, [&](const Entry& e) { return stamp_[static_cast<size_t>(e.block)] != e.seq; });
    std::make_heap(heap_.begin(), heap_.end(), Later{});
  }

  void remove_member(BlockId b) {
    const size_t i = static_cast<size_t>(b);
    if (pos_[i] == 0) return;
    // Swap-remove: candidate order is not part of the evict() contract.
    const size_t at = pos_[i] - 1;
    const BlockId last = ids_.back();
    ids_[at] = last;
    pos_[static_cast<size_t>(last)] = static_cast<uint32_t>(at + 1);
    ids_.pop_back();
    pos_[i] = 0;
  }

  Script s_;
  BlockKeyCall key_;
  EvictCall evict_;
  // key mode
  std::vector<Entry> heap_;
  std::vector<uint64_t> stamp_;  // [block id]: seq of the live heap entry, 0 when absent
  uint64_t seq_ = 0;
  size_t size_ = 0;
  // evict mode
  std::vector<BlockId> ids_;
  std::vector<Member> members_;  // [block id]
  std::vector<uint32_t> pos_;    // [block id]: index into ids_ + 1, 0 when absent
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lua_eviction_policy(const std::string& file,
                                                         const LuaLimits& limits) {
  return std::make_unique<LuaEviction>(file, limits);
}

}  // namespace twinfer
