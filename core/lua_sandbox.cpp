#include "core/lua_sandbox.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <lua.hpp>

#include "core/error.h"

namespace twinfer {
namespace {

LuaBudget* budget_of(lua_State* L) {
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  return static_cast<LuaBudget*>(ud);
}

// Counts live bytes; refuses growth past the limit so Lua raises its memory error (after one
// emergency collection) instead of the process running out of memory. Frees always succeed.
void* budget_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* b = static_cast<LuaBudget*>(ud);
  const size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    b->used -= old;
    return nullptr;
  }
  if (nsize > old && b->used - old + nsize > b->limit) {
    b->memory_exceeded = true;
    return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (!p) return nullptr;
  b->used = b->used - old + nsize;
  return p;
}

// Fires every hook_period instructions. Once over budget it re-arms itself for every
// instruction, so a script that catches the error with pcall fails again at its next
// instruction and the error reaches the top.
void count_hook(lua_State* L, lua_Debug*) {
  LuaBudget* b = budget_of(L);
  b->instructions += b->hook_period;
  if (b->instructions <= b->max_instructions) return;
  if (!b->instructions_exceeded) {
    b->instructions_exceeded = true;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  }
  luaL_error(L, "instruction budget exceeded (%I Lua instructions per call); an endless loop?",
             static_cast<lua_Integer>(b->max_instructions));
}

// Message handler: the message with a traceback of the Lua frames.
int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is %s)", lua_type_phrase(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

// load() forced to text mode: a bytecode string fails with Lua's own "attempt to load a binary
// chunk (mode is 't')". The original load is upvalue 1; argument 4 (env) is kept absent when
// the caller left it absent, because load treats an explicit nil env differently.
int text_only_load(lua_State* L) {
  if (lua_gettop(L) < 3) lua_settop(L, 3);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

int open_sandbox(lua_State* L) {
  const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},         {LUA_TABLIBNAME, luaopen_table},
                           {LUA_STRLIBNAME, luaopen_string},  {LUA_MATHLIBNAME, luaopen_math},
                           {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine}};
  for (const luaL_Reg& lib : libs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  // os: only the clocks; the library itself stays unreachable (no package, no debug).
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
  lua_createtable(L, 0, 3);
  for (const char* name : {"clock", "time", "date"}) {
    lua_getfield(L, -2, name);
    lua_setfield(L, -2, name);
  }
  lua_setglobal(L, "os");
  lua_pop(L, 1);
  for (const char* name : {"dofile", "loadfile", "require"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_getglobal(L, "load");
  lua_pushcclosure(L, text_only_load, 1);
  lua_setglobal(L, "load");
  return 0;
}

int at_panic(lua_State* L) {
  // Only reachable through a bug in the binding layer (an unprotected raising call).
  const char* msg = lua_tostring(L, -1);
  std::fprintf(stderr, "twinfer: unprotected Lua error: %s\n", msg ? msg : "?");
  std::abort();
}

int push_view_string(lua_State* L) {
  const auto* s = static_cast<const std::string_view*>(lua_touserdata(L, 1));
  lua_pushlstring(L, s->data(), s->size());
  return 1;
}

}  // namespace

const char* lua_type_phrase(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNONE: return "no value";
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return "a boolean";
    case LUA_TNUMBER: return lua_isinteger(L, idx) ? "an integer" : "a number";
    case LUA_TSTRING: return "a string";
    case LUA_TTABLE: return "a table";
    case LUA_TFUNCTION: return "a function";
    case LUA_TUSERDATA:
    case LUA_TLIGHTUSERDATA: return "a userdata";
    case LUA_TTHREAD: return "a coroutine";
    default: return "an unknown value";
  }
}

int lua_protected(lua_State* L, int (*f)(lua_State*), void* ud, int nargs, int nresults,
                  bool traceback) {
  if (!lua_checkstack(L, 4)) return LUA_ERRMEM;  // leaves nothing: callers check the stack
  lua_pushcfunction(L, f);
  lua_insert(L, -(nargs + 1));
  lua_pushlightuserdata(L, ud);
  lua_insert(L, -(nargs + 1));
  if (!traceback) return lua_pcall(L, nargs + 1, nresults, 0);
  const int base = lua_gettop(L) - nargs - 1;  // index of f
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  const int status = lua_pcall(L, nargs + 1, nresults, base);
  lua_remove(L, base);
  return status;
}

void lua_push_string_safe(lua_State* L, std::string_view s) {
  const int top = lua_gettop(L);
  lua_protected(L, push_view_string, &s, 0, 1, false);
  // No stack space at all: a C function still has LUA_MINSTACK slots for this one value.
  if (lua_gettop(L) == top) lua_pushnil(L);
}

LuaSandbox::LuaSandbox(const LuaLimits& limits) : limits_(limits) {
  budget_.limit = limits.max_memory_bytes;
  budget_.max_instructions = limits.max_instructions;
  budget_.hook_period = static_cast<int>(std::min<int64_t>(1000, std::max<int64_t>(1, limits.max_instructions)));
  L_ = lua_newstate(budget_alloc, &budget_);
  if (!L_)
    throw ConfigError("Lua: cannot create a state within the memory budget of " +
                      std::to_string(limits.max_memory_bytes) + " bytes");
  lua_atpanic(L_, at_panic);
  lua_sethook(L_, count_hook, LUA_MASKCOUNT, budget_.hook_period);
  const int status = protected_call(open_sandbox, nullptr, 0, 0);
  if (status != LUA_OK) {
    std::string msg = pop_error(status, "Lua: opening the sandbox");
    lua_close(L_);
    throw ConfigError(msg);
  }
}

LuaSandbox::~LuaSandbox() {
  if (L_) lua_close(L_);
}

void LuaSandbox::reset_budget() {
  budget_.memory_exceeded = false;
  budget_.instructions = 0;
  if (budget_.instructions_exceeded) {
    budget_.instructions_exceeded = false;
    lua_sethook(L_, count_hook, LUA_MASKCOUNT, budget_.hook_period);
  }
}

void LuaSandbox::load(std::string_view code, const std::string& chunkname) {
  if (!lua_checkstack(L_, 2)) throw ConfigError(chunkname + ": Lua stack overflow");
  reset_budget();
  const int status = luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t");
  if (status == LUA_OK) return;
  const char* msg = lua_tostring(L_, -1);
  std::string text = status == LUA_ERRSYNTAX ? "Lua syntax error: " : "Lua: cannot load: ";
  text += msg ? msg : "unknown error";
  if (status == LUA_ERRMEM && budget_.memory_exceeded)
    text = "Lua: " + chunkname.substr(chunkname[0] == '@' ? 1 : 0) +
           ": memory budget exceeded while compiling";
  lua_pop(L_, 1);
  throw ConfigError(text);
}

void LuaSandbox::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open Lua script");
  std::ostringstream ss;
  ss << in.rdbuf();
  load(ss.str(), "@" + path);
}

int LuaSandbox::protected_call(int (*f)(lua_State*), void* ud, int nargs, int nresults) {
  reset_budget();
  const int top = lua_gettop(L_) - nargs;
  const int status = lua_protected(L_, f, ud, nargs, nresults, true);
  if (status != LUA_OK && lua_gettop(L_) != top + 1) {
    lua_settop(L_, top);  // no stack space was left: drop the arguments, leave a nil message
    lua_pushnil(L_);
  }
  return status;
}

int LuaSandbox::call(int nargs, int nresults) {
  reset_budget();
  if (!lua_checkstack(L_, 2)) {
    lua_pop(L_, nargs + 1);
    lua_pushnil(L_);
    return LUA_ERRMEM;
  }
  const int base = lua_gettop(L_) - nargs;  // index of the function
  lua_pushcfunction(L_, traceback_handler);
  lua_insert(L_, base);
  const int status = lua_pcall(L_, nargs, nresults, base);
  lua_remove(L_, base);
  return status;
}

std::string LuaSandbox::pop_error(int status, const std::string& context) {
  std::string msg;
  if (lua_type(L_, -1) == LUA_TSTRING) msg = lua_tostring(L_, -1);
  else msg = std::string("(error object is ") + lua_type_phrase(L_, -1) + ")";
  lua_pop(L_, 1);
  // A refused allocation surfaces as LUA_ERRMEM, or as an error in the message handler when
  // building the traceback itself ran out of budget.
  if (budget_.memory_exceeded && (status == LUA_ERRMEM || status == LUA_ERRERR))
    msg = "memory budget exceeded (" + std::to_string(limits_.max_memory_bytes >> 20) +
          " MiB per Lua state); a script allocating without bound?";
  return context.empty() ? msg : context + ": " + msg;
}

void LuaSandbox::call_or_throw(int nargs, int nresults, const std::string& context) {
  const int status = call(nargs, nresults);
  if (status != LUA_OK) throw ConfigError(pop_error(status, context));
}

}  // namespace twinfer
