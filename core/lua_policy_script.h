// Internal to the Lua policy adapters (core/lua_policy.cpp, core/lua_eviction.cpp): the loaded
// policy file and helpers shared by the protected call functions.
#pragma once
#include <string>

#include "core/lua_sandbox.h"
#include "core/policy.h"

struct lua_State;

namespace twinfer::lua_policy {

// A policy file loaded into its own sandbox: the table it returned is kept in the registry.
class Script {
 public:
  // `kind` names the policy in messages ("scheduling policy"). Throws ConfigError when the file
  // cannot be read, does not compile, fails, or returns something other than a table.
  Script(const std::string& file, const char* kind, const LuaLimits& limits);

  LuaSandbox& sandbox() { return sb_; }
  lua_State* state() const { return sb_.state(); }
  const std::string& file() const { return file_; }

  // Registry reference of the table's function field `name`; -1 when absent. A field that is
  // present but not a function throws ConfigError naming it and `signature`.
  int function_ref(const char* name, const char* signature);
  // A boolean field; `def` when absent. Any other type throws.
  bool flag(const char* name, bool def);
  // A fresh table kept in the registry for reuse across calls (views, lists).
  int new_table_ref();
  // Registry reference of the interned field names of views (see Field).
  int keys_ref() const { return keys_ref_; }
  // Throws ConfigError for a failed protected call: "<kind> lua:FILE: <message + traceback>".
  [[noreturn]] void fail(int status);
  // A missing required function.
  [[noreturn]] void missing(const char* name, const char* signature);
  // function_ref for a function the policy cannot do without.
  int required_function_ref(const char* name, const char* signature) {
    const int ref = function_ref(name, signature);
    if (ref < 0) missing(name, signature);
    return ref;
  }

 private:
  LuaSandbox sb_;
  std::string file_;
  std::string kind_;
  int table_ref_ = -1;
  int keys_ref_ = -1;
};

// Field names of the view tables, by position in the keys table. Setting fields through keys
// pushed from that table skips interning the name on every call (lua_setfield hashes and
// compares the C string each time; that was 40% of a FCFS key() call).
enum Field : int {
  kId = 1, kArrival, kWaiting, kPromptLen, kGenerated, kOutputLen, kMaxTokens, kPriority,
  kPrefixHitBlocks, kNumPreemptions, kNumBlocks,  // request views
  kAccessCount, kLastAccess,                      // block views (and kId)
  kNumFields = kLastAccess
};


// Fills the table at absolute index `view` with a request view (raises only on memory errors,
// so call it inside a protected function). output_len is nil when the workload does not know
// it. `keys` is the absolute index of the keys table.
void fill_request(lua_State* L, int view, int keys, const RequestView& v);

// Raises "FILE:LINE: fn() returned <got>; expected <expected>" where FILE:LINE is the
// definition of the function in registry slot fn_ref.
int bad_result(lua_State* L, int fn_ref, const char* fn, const char* got, const char* expected);

}  // namespace twinfer::lua_policy
