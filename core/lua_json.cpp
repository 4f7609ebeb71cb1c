#include "core/lua_json.h"

#include <cmath>
#include <lua.hpp>

#include "core/lua_sandbox.h"

namespace twinfer {
namespace {

constexpr int kMaxDepth = 100;

bool to_json(lua_State* L, int idx, Json& out, std::string& err, const std::string& path,
             int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: out = Json(); return true;
    case LUA_TBOOLEAN: out = Json(lua_toboolean(L, idx) != 0); return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) out = Json(static_cast<int64_t>(lua_tointeger(L, idx)));
      else out = Json(static_cast<double>(lua_tonumber(L, idx)));
      return true;
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);  // a string already: no conversion, no raise
      out = Json(std::string(s, n));
      return true;
    }
    case LUA_TTABLE: break;
    default:
      err = path + ": cannot convert " + lua_type_phrase(L, idx) + " to JSON";
      return false;
  }
  if (depth >= kMaxDepth) {
    err = path + ": tables nested deeper than " + std::to_string(kMaxDepth) +
          " levels (a table that contains itself?)";
    return false;
  }
  if (!lua_checkstack(L, 3)) {
    err = path + ": Lua stack exhausted";
    return false;
  }
  const int t = lua_absindex(L, idx);
  // A sequence is a table whose keys are exactly 1..n; count keys and check each.
  const lua_Unsigned n = lua_rawlen(L, t);
  size_t keys = 0;
  bool sequence = true;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    ++keys;
    int isint = 0;
    const lua_Integer k = lua_type(L, -2) == LUA_TNUMBER ? lua_tointegerx(L, -2, &isint) : 0;
    if (!isint || k < 1 || static_cast<lua_Unsigned>(k) > n) sequence = false;
    lua_pop(L, 1);
  }
  if (keys == 0) {
    out = Json::object();
    return true;
  }
  if (sequence && keys == n) {
    Json::Array arr(static_cast<size_t>(n));
    for (lua_Unsigned i = 1; i <= n; ++i) {
      lua_rawgeti(L, t, static_cast<lua_Integer>(i));
      const bool ok = to_json(L, -1, arr[static_cast<size_t>(i - 1)], err,
                              path + "[" + std::to_string(i) + "]", depth + 1);
      lua_pop(L, 1);
      if (!ok) return false;
    }
    out = Json(std::move(arr));
    return true;
  }
  Json::Object obj;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    std::string key;
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len = 0;
      const char* s = lua_tolstring(L, -2, &len);
      key.assign(s, len);
    } else if (lua_isinteger(L, -2)) {
      key = std::to_string(lua_tointeger(L, -2));
    } else {
      err = path + ": table key is " + lua_type_phrase(L, -2) + "; expected a string";
      lua_pop(L, 2);
      return false;
    }
    Json v;
    if (!to_json(L, -1, v, err, path + "." + key, depth + 1)) {
      lua_pop(L, 2);
      return false;
    }
    obj.emplace(std::move(key), std::move(v));
    lua_pop(L, 1);
  }
  out = Json(std::move(obj));
  return true;
}

// Runs under lua_pcall: references and iterators only, so a raised error skips no destructor.
void push(lua_State* L, const Json& j) {
  luaL_checkstack(L, 3, "JSON nested too deeply");
  if (j.is_null()) {
    lua_pushnil(L);
  } else if (j.is_bool()) {
    lua_pushboolean(L, j.as_bool());
  } else if (j.is_number()) {
    const double d = j.as_number();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0)
      lua_pushinteger(L, static_cast<lua_Integer>(d));
    else
      lua_pushnumber(L, d);
  } else if (j.is_string()) {
    const std::string& s = j.as_string();
    lua_pushlstring(L, s.data(), s.size());
  } else if (j.is_array()) {
    const Json::Array& a = j.as_array();
    lua_createtable(L, static_cast<int>(a.size()), 0);
    lua_Integer i = 0;
    for (const Json& v : a) {
      push(L, v);
      lua_rawseti(L, -2, ++i);
    }
  } else {
    const Json::Object& o = j.as_object();
    lua_createtable(L, 0, static_cast<int>(o.size()));
    for (const auto& kv : o) {
      lua_pushlstring(L, kv.first.data(), kv.first.size());
      push(L, kv.second);
      lua_rawset(L, -3);
    }
  }
}

int push_protected(lua_State* L) {
  push(L, *static_cast<const Json*>(lua_touserdata(L, 1)));
  return 1;
}

}  // namespace

bool lua_to_json(lua_State* L, int idx, Json& out, std::string& err, const std::string& path) {
  return to_json(L, idx, out, err, path, 0);
}

int lua_push_json(lua_State* L, const Json& j) {
  const int top = lua_gettop(L);
  const int status = lua_protected(L, push_protected, const_cast<Json*>(&j), 0, 1, false);
  if (lua_gettop(L) == top) lua_pushnil(L);
  return status;
}

}  // namespace twinfer
