// Conversions between Lua values and Json, written to the sandbox's rule (core/lua_sandbox.h):
// reading never raises a Lua error, pushing runs under protection.
//   Lua -> Json: nil -> null, booleans, numbers (integers stay integral), strings, tables:
//   a sequence 1..n -> array, any other table -> object (integer keys become their decimal
//   text); functions, coroutines and userdata are errors naming the path ("rows[2].f").
//   Json -> Lua: integral numbers become Lua integers (so "%d" formats them), objects and
//   arrays become tables; an empty table reads back as an object.
#pragma once
#include <string>

#include "core/json.h"

struct lua_State;

namespace twinfer {

// Converts the value at idx. Returns false with `err` set ("path: cannot convert a function
// to JSON") on an unconvertible value or nesting deeper than 100 levels (cycles included).
bool lua_to_json(lua_State* L, int idx, Json& out, std::string& err, const std::string& path = "value");

// Pushes j. Returns the lua_pcall status; on failure the one value left is the error message.
int lua_push_json(lua_State* L, const Json& j);

}  // namespace twinfer
