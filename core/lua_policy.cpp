// Adapters running a Lua function as a queue, victim, block-size or speculative-tree policy.
// Each call goes through one protected C function (the *_call structs are its PODs): it fills a
// reused view table, calls the script, checks the answer and stores it in the struct; the C++
// side then reads the struct or throws ConfigError with the message. Tables are reused across
// calls so a queue key costs no Lua allocation beyond what the script itself does.
#include "core/lua_policy.h"

#include <cmath>
#include <lua.hpp>

#include "core/error.h"
#include "core/lua_policy_script.h"
#include "policies/registry.h"

namespace twinfer {
namespace lua_policy {
namespace {

struct FieldQuery {
  int table_ref;
  const char* name;
  int type = LUA_TNIL;
  int ref = -1;
  bool value = false;
};

int query_field(lua_State* L) {
  auto* q = static_cast<FieldQuery*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, q->table_ref);
  lua_getfield(L, -1, q->name);
  q->type = lua_type(L, -1);
  if (q->type == LUA_TBOOLEAN) q->value = lua_toboolean(L, -1) != 0;
  if (q->type == LUA_TFUNCTION) q->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int make_table_ref(lua_State* L) {
  lua_newtable(L);
  *static_cast<int*>(lua_touserdata(L, 1)) = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

constexpr const char* kFieldNames[kNumFields] = {
    "id", "arrival", "waiting", "prompt_len", "generated", "output_len", "max_tokens",
    "priority", "prefix_hit_blocks", "num_preemptions", "num_blocks", "access_count", "last_access"};

int make_keys(lua_State* L) {
  lua_createtable(L, kNumFields, 0);
  for (int i = 0; i < kNumFields; ++i) {
    lua_pushstring(L, kFieldNames[i]);
    lua_rawseti(L, -2, i + 1);
  }
  *static_cast<int*>(lua_touserdata(L, 1)) = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int keep_table(lua_State* L) {
  // Argument 2: the chunk's result.
  *static_cast<int*>(lua_touserdata(L, 1)) = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

}  // namespace

Script::Script(const std::string& file, const char* kind, const LuaLimits& limits)
    : sb_(limits), file_(file), kind_(kind) {
  try {
    sb_.load_file(file);
  } catch (const ConfigError& e) {
    throw ConfigError(kind_ + " lua:" + file_ + ": " + e.what(), 2);
  }
  lua_State* L = sb_.state();
  const int status = sb_.call(0, 1);
  if (status != LUA_OK) fail(status);
  if (lua_type(L, -1) != LUA_TTABLE) {
    const std::string got = lua_type_phrase(L, -1);
    lua_pop(L, 1);
    throw ConfigError(kind_ + " lua:" + file_ + ": the script returned " + got +
                          "; expected a table of policy functions, e.g. "
                          "return { key = function(req, now) return req.arrival end }",
                      2);
  }
  int st = sb_.protected_call(keep_table, &table_ref_, 1, 0);
  if (st != LUA_OK) fail(st);
  st = sb_.protected_call(make_keys, &keys_ref_, 0, 0);
  if (st != LUA_OK) fail(st);
}

void Script::fail(int status) {
  throw ConfigError(sb_.pop_error(status, kind_ + " lua:" + file_));
}

void Script::missing(const char* name, const char* signature) {
  throw ConfigError(kind_ + " lua:" + file_ + ": the returned table has no '" + name +
                        "' function; expected " + signature,
                    2);
}

int Script::function_ref(const char* name, const char* signature) {
  FieldQuery q{table_ref_, name};
  const int status = sb_.protected_call(query_field, &q, 0, 0);
  if (status != LUA_OK) fail(status);
  if (q.type == LUA_TNIL) return -1;
  if (q.type != LUA_TFUNCTION)
    throw ConfigError(kind_ + " lua:" + file_ + ": field '" + name + "' is " +
                          lua_typename(state(), q.type) + "; expected " + signature,
                      2);
  return q.ref;
}

bool Script::flag(const char* name, bool def) {
  FieldQuery q{table_ref_, name};
  const int status = sb_.protected_call(query_field, &q, 0, 0);
  if (status != LUA_OK) fail(status);
  if (q.type == LUA_TNIL) return def;
  if (q.type != LUA_TBOOLEAN)
    throw ConfigError(kind_ + " lua:" + file_ + ": field '" + name + "' is " +
                          lua_typename(state(), q.type) + "; expected true or false",
                      2);
  return q.value;
}

int Script::new_table_ref() {
  int ref = -1;
  const int status = sb_.protected_call(make_table_ref, &ref, 0, 0);
  if (status != LUA_OK) fail(status);
  return ref;
}

void fill_request(lua_State* L, int view, int keys, const RequestView& v) {
  lua_rawgeti(L, keys, kId);
  lua_pushinteger(L, static_cast<lua_Integer>(v.id));
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kArrival);
  lua_pushnumber(L, v.arrival_s);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kWaiting);
  lua_pushnumber(L, v.waiting_s);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kPromptLen);
  lua_pushinteger(L, v.prompt_len);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kGenerated);
  lua_pushinteger(L, v.generated);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kOutputLen);
  if (v.output_len >= 0) lua_pushinteger(L, v.output_len);
  else lua_pushnil(L);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kMaxTokens);
  lua_pushinteger(L, v.max_tokens);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kPriority);
  lua_pushinteger(L, v.priority);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kPrefixHitBlocks);
  lua_pushinteger(L, v.prefix_hit_blocks);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kNumPreemptions);
  lua_pushinteger(L, v.num_preemptions);
  lua_rawset(L, view);
  lua_rawgeti(L, keys, kNumBlocks);
  lua_pushinteger(L, v.num_blocks);
  lua_rawset(L, view);
}

int bad_result(lua_State* L, int fn_ref, const char* fn, const char* got, const char* expected) {
  lua_Debug ar;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
  lua_getinfo(L, ">S", &ar);
  return luaL_error(L, "%s:%d: %s() returned %s; expected %s", ar.short_src, ar.linedefined, fn,
                    got, expected);
}

}  // namespace lua_policy

namespace {

using lua_policy::bad_result;
using lua_policy::fill_request;
using lua_policy::Script;

// ---- queue order -------------------------------------------------------------------------

struct KeyCall {
  int fn_ref = -1, view_ref = -1, keys_ref = -1;
  const RequestView* view = nullptr;
  double now = 0, result = 0;
};

int call_key(lua_State* L) {
  auto* c = static_cast<KeyCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->view_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->keys_ref);
  fill_request(L, lua_gettop(L) - 1, lua_gettop(L), *c->view);
  lua_pop(L, 1);  // keys
  lua_pushnumber(L, c->now);
  lua_call(L, 2, 1);
  if (lua_type(L, -1) != LUA_TNUMBER)
    return bad_result(L, c->fn_ref, "key", lua_type_phrase(L, -1), "a number (smaller is served first)");
  c->result = lua_tonumber(L, -1);
  if (std::isnan(c->result)) return bad_result(L, c->fn_ref, "key", "NaN", "a number (smaller is served first)");
  return 0;
}

class LuaQueue final : public QueuePolicy {
 public:
  LuaQueue(const std::string& file, const LuaLimits& limits)
      : s_(file, "scheduling policy", limits) {
    const char* sig = "key(req, now) -> number";
    call_.fn_ref = s_.required_function_ref("key", sig);
    call_.view_ref = s_.new_table_ref();
    call_.keys_ref = s_.keys_ref();
    time_dependent_ = s_.flag("time_dependent", false);
    needs_prefix_hits_ = s_.flag("needs_prefix_hits", false);
  }
  std::string name() const override { return "lua:" + s_.file(); }
  double key(const RequestView& r, double now) override {
    call_.view = &r;
    call_.now = now;
    const int status = s_.sandbox().protected_call(call_key, &call_, 0, 0);
    if (status != LUA_OK) s_.fail(status);
    return call_.result;
  }
  bool time_dependent() const override { return time_dependent_; }
  bool needs_prefix_hits() const override { return needs_prefix_hits_; }

 private:
  Script s_;
  KeyCall call_;
  bool time_dependent_ = false, needs_prefix_hits_ = false;
};

// ---- preemption victim -------------------------------------------------------------------

struct ChooseCall {
  int fn_ref = -1, list_ref = -1, pool_ref = -1, keys_ref = -1;
  const RequestView* views = nullptr;
  size_t n = 0;
  size_t listed = 0;  // entries the list table held after the previous call
  double now = 0;
  size_t result = 0;
};

int call_choose(lua_State* L) {
  auto* c = static_cast<ChooseCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->list_ref);
  const int list = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->pool_ref);
  const int pool = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->keys_ref);
  const int keys = lua_gettop(L);
  // The pool keeps one view table per position across calls; the list points at the first n.
  for (size_t i = 1; i <= c->n; ++i) {
    const auto k = static_cast<lua_Integer>(i);
    if (lua_rawgeti(L, pool, k) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_createtable(L, 0, 11);
      lua_pushvalue(L, -1);
      lua_rawseti(L, pool, k);
    }
    fill_request(L, lua_gettop(L), keys, c->views[i - 1]);
    lua_rawseti(L, list, k);
  }
  for (size_t i = c->n + 1; i <= c->listed; ++i) {
    lua_pushnil(L);
    lua_rawseti(L, list, static_cast<lua_Integer>(i));
  }
  c->listed = c->n;
  lua_pop(L, 2);  // keys, pool
  lua_pushnumber(L, c->now);
  lua_call(L, 2, 1);
  int isint = 0;
  const lua_Integer k = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
  if (!isint) return bad_result(L, c->fn_ref, "choose", lua_type_phrase(L, -1), "an integer index into running (1-based)");
  if (k < 1 || static_cast<size_t>(k) > c->n) {
    lua_pushfstring(L, "%I, which is outside running", k);
    lua_pushfstring(L, "an index in 1..%d", static_cast<int>(c->n));
    return bad_result(L, c->fn_ref, "choose", lua_tostring(L, -2), lua_tostring(L, -1));
  }
  c->result = static_cast<size_t>(k - 1);
  return 0;
}

class LuaVictim final : public VictimPolicy {
 public:
  LuaVictim(const std::string& file, const LuaLimits& limits)
      : s_(file, "preemption victim", limits) {
    const char* sig = "choose(running, now) -> index (1-based)";
    call_.fn_ref = s_.required_function_ref("choose", sig);
    call_.list_ref = s_.new_table_ref();
    call_.pool_ref = s_.new_table_ref();
    call_.keys_ref = s_.keys_ref();
  }
  std::string name() const override { return "lua:" + s_.file(); }
  size_t choose(std::span<const RequestView> running, double now) override {
    call_.views = running.data();
    call_.n = running.size();
    call_.now = now;
    const int status = s_.sandbox().protected_call(call_choose, &call_, 0, 0);
    if (status != LUA_OK) s_.fail(status);
    return call_.result;
  }

 private:
  Script s_;
  ChooseCall call_;
};

// ---- block size --------------------------------------------------------------------------

struct BlockSizeCall {
  int fn_ref = -1;
  int32_t max_model_len = 0;
  double mean_prompt = 0, mean_output = 0;
  int32_t result = 0;
};

int call_block_size(lua_State* L) {
  auto* c = static_cast<BlockSizeCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_pushinteger(L, c->max_model_len);
  lua_pushnumber(L, c->mean_prompt);
  lua_pushnumber(L, c->mean_output);
  lua_call(L, 3, 1);
  int isint = 0;
  const lua_Integer b = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
  if (!isint) return bad_result(L, c->fn_ref, "block_size", lua_type_phrase(L, -1), "an integer number of tokens per block");
  if (b < 1 || b > 4096) {
    lua_pushfstring(L, "%I", b);
    return bad_result(L, c->fn_ref, "block_size", lua_tostring(L, -1), "tokens per block in 1..4096");
  }
  c->result = static_cast<int32_t>(b);
  return 0;
}

class LuaBlockSize final : public BlockSizePolicy {
 public:
  LuaBlockSize(const std::string& file, const LuaLimits& limits)
      : s_(file, "block-size policy", limits) {
    const char* sig = "block_size(max_model_len, mean_prompt, mean_output) -> integer";
    call_.fn_ref = s_.required_function_ref("block_size", sig);
  }
  std::string name() const override { return "lua:" + s_.file(); }
  int32_t choose(int32_t max_model_len, double mean_prompt, double mean_output) override {
    call_.max_model_len = max_model_len;
    call_.mean_prompt = mean_prompt;
    call_.mean_output = mean_output;
    const int status = s_.sandbox().protected_call(call_block_size, &call_, 0, 0);
    if (status != LUA_OK) s_.fail(status);
    return call_.result;
  }

 private:
  Script s_;
  BlockSizeCall call_;
};

// ---- speculative tree shape --------------------------------------------------------------

constexpr int kMaxTreeDepth = 16;
constexpr int64_t kMaxTreeNodes = 4096;

struct TreeCall {
  int fn_ref = -1;
  int32_t batch_size = 0;
  double acceptance = 0;
  int depth = 0;
  int shape[kMaxTreeDepth] = {};
};

int call_tree(lua_State* L) {
  auto* c = static_cast<TreeCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  lua_pushinteger(L, c->batch_size);
  lua_pushnumber(L, c->acceptance);
  lua_call(L, 2, 1);
  const char* expected = "a list of branching factors per depth, e.g. {4, 2, 1}";
  if (lua_type(L, -1) != LUA_TTABLE) return bad_result(L, c->fn_ref, "tree", lua_type_phrase(L, -1), expected);
  const lua_Unsigned n = lua_rawlen(L, -1);
  if (n > static_cast<lua_Unsigned>(kMaxTreeDepth)) {
    lua_pushfstring(L, "%d levels", static_cast<int>(n));
    lua_pushfstring(L, "at most %d levels", kMaxTreeDepth);
    return bad_result(L, c->fn_ref, "tree", lua_tostring(L, -2), lua_tostring(L, -1));
  }
  int64_t width = 1, nodes = 0;
  for (lua_Unsigned i = 1; i <= n; ++i) {
    lua_rawgeti(L, -1, static_cast<lua_Integer>(i));
    int isint = 0;
    const lua_Integer b = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
    if (!isint || b < 1) {
      lua_pushfstring(L, "%s at depth %d", isint ? "a factor below 1" : lua_type_phrase(L, -1),
                      static_cast<int>(i));
      return bad_result(L, c->fn_ref, "tree", lua_tostring(L, -1), "positive integer branching factors");
    }
    width = std::min<int64_t>(width * b, kMaxTreeNodes + 1);
    nodes += width;
    if (nodes > kMaxTreeNodes) {
      lua_pushfstring(L, "a tree of more than %d draft tokens", static_cast<int>(kMaxTreeNodes));
      return bad_result(L, c->fn_ref, "tree", lua_tostring(L, -1), "a smaller tree");
    }
    c->shape[i - 1] = static_cast<int>(b);
    lua_pop(L, 1);
  }
  c->depth = static_cast<int>(n);
  return 0;
}

class LuaSpecTree final : public SpecTreePolicy {
 public:
  LuaSpecTree(const std::string& file, const LuaLimits& limits)
      : s_(file, "speculative tree policy", limits) {
    const char* sig = "tree(batch_size, acceptance_rate) -> {branching factor per depth}";
    call_.fn_ref = s_.required_function_ref("tree", sig);
  }
  std::string name() const override { return "lua:" + s_.file(); }
  std::vector<int> shape(int32_t batch_size, double acceptance_rate) override {
    call_.batch_size = batch_size;
    call_.acceptance = acceptance_rate;
    const int status = s_.sandbox().protected_call(call_tree, &call_, 0, 0);
    if (status != LUA_OK) s_.fail(status);
    return std::vector<int>(call_.shape, call_.shape + call_.depth);
  }

 private:
  Script s_;
  TreeCall call_;
};

}  // namespace

std::unique_ptr<QueuePolicy> make_lua_queue_policy(const std::string& file, const LuaLimits& limits) {
  return std::make_unique<LuaQueue>(file, limits);
}
std::unique_ptr<VictimPolicy> make_lua_victim_policy(const std::string& file, const LuaLimits& limits) {
  return std::make_unique<LuaVictim>(file, limits);
}
std::unique_ptr<BlockSizePolicy> make_lua_block_size_policy(const std::string& file,
                                                            const LuaLimits& limits) {
  return std::make_unique<LuaBlockSize>(file, limits);
}
std::unique_ptr<SpecTreePolicy> make_lua_spec_tree_policy(const std::string& file,
                                                          const LuaLimits& limits) {
  return std::make_unique<LuaSpecTree>(file, limits);
}

void register_lua_policies(const LuaLimits& limits) {
  LuaFactories f;
  f.queue = [limits](const std::string& file) { return make_lua_queue_policy(file, limits); };
  f.victim = [limits](const std::string& file) { return make_lua_victim_policy(file, limits); };
  f.eviction = [limits](const std::string& file) { return make_lua_eviction_policy(file, limits); };
  f.block_size = [limits](const std::string& file) { return make_lua_block_size_policy(file, limits); };
  register_lua_policy_factories(std::move(f));
}

}  // namespace twinfer
