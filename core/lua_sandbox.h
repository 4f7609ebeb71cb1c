// One sandboxed Lua 5.4 state: text chunks only, a trimmed standard library (no io, package,
// debug, dofile, loadfile; os reduced to clock/time/date; load forced to text mode), an
// instruction budget per top-level call (count hook) and a memory budget (counting allocator).
//
// Lua's C build reports errors with longjmp, which must never cross a C++ frame that owns
// objects with destructors. The rule in every file that talks to Lua:
//   - Lua code and any API call that may raise (allocation, metamethods) run only inside
//     protected_call(), i.e. under lua_pcall, in plain C-style functions that hold PODs only;
//   - C++ code reads Lua values only through calls that cannot raise (lua_type, lua_tonumberx,
//     lua_tolstring on strings, lua_rawgeti, lua_next, lua_checkstack);
//   - C++ exceptions never propagate into Lua frames; they are caught at the lua_CFunction.
// No state is global: every policy and every experiment owns its own LuaSandbox, so runs on
// different threads never share a lua_State.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct lua_State;

namespace twinfer {

struct LuaLimits {
  // Lua VM instructions one top-level call may execute (C functions it calls do not count).
  int64_t max_instructions = 10'000'000;
  size_t max_memory_bytes = size_t{256} << 20;

  static LuaLimits policy() { return {}; }
  static LuaLimits experiment() { return {10'000'000'000, size_t{256} << 20}; }
};

// Allocation and instruction accounting shared by every coroutine of one state; reachable from
// the allocator and the hook through lua_getallocf's user data.
struct LuaBudget {
  size_t used = 0;
  size_t limit = 0;
  bool memory_exceeded = false;  // an allocation was refused since the last reset
  int64_t instructions = 0;      // executed since the last reset (in steps of hook_period)
  int64_t max_instructions = 0;
  int hook_period = 1000;
  bool instructions_exceeded = false;
};

class LuaSandbox {
 public:
  explicit LuaSandbox(const LuaLimits& limits = LuaLimits::policy());
  ~LuaSandbox();
  LuaSandbox(const LuaSandbox&) = delete;
  LuaSandbox& operator=(const LuaSandbox&) = delete;

  lua_State* state() const { return L_; }
  const LuaLimits& limits() const { return limits_; }
  size_t memory_used() const { return budget_.used; }

  // Compiles a text chunk (bytecode is refused) and leaves the chunk's function on the stack.
  // `chunkname` follows Lua's convention: "@path" for files, so messages read "path:LINE:".
  // Throws ConfigError with the syntax error ("path:LINE: ... near 'x'").
  void load(std::string_view code, const std::string& chunkname);
  // Reads and compiles a file; throws ConfigError naming the file when it cannot be read.
  void load_file(const std::string& path);

  // Calls `f(ud, args...)` under lua_pcall with the budgets reset: the nargs values on top of
  // the stack become f's arguments 2.., with `ud` as a light userdata at index 1. Returns the
  // status; on error the stack holds one value instead of the results: the message with a
  // traceback. pop_error() turns it into text and names an exceeded budget.
  int protected_call(int (*f)(lua_State*), void* ud, int nargs, int nresults);
  // Calls the Lua function below nargs arguments, as protected_call does.
  int call(int nargs, int nresults);
  // Pops the message protected_call/call left and returns it (with `context` prefixed when
  // not empty).
  std::string pop_error(int status, const std::string& context = "");
  // call() that throws ConfigError(pop_error(...)) on failure.
  void call_or_throw(int nargs, int nresults, const std::string& context = "");

 private:
  LuaLimits limits_;
  LuaBudget budget_;
  lua_State* L_ = nullptr;

  void reset_budget();
};

// protected_call without touching the budgets, for use inside a lua_CFunction (whose stack
// frame starts at index 1): `f` runs under lua_pcall with a traceback handler when asked.
int lua_protected(lua_State* L, int (*f)(lua_State*), void* ud, int nargs, int nresults,
                  bool traceback);

// Pushes a Lua string without raising: under protection, so an out-of-memory leaves Lua's
// memory error message instead. Always leaves exactly one value.
void lua_push_string_safe(lua_State* L, std::string_view s);

// "a number", "a string", "nil", ... for messages about values of the wrong type.
const char* lua_type_phrase(lua_State* L, int idx);

}  // namespace twinfer
