// Lua source of the experiment API's table helpers (app/lua_prelude.cpp).
#pragma once

namespace twinfer {
extern const char* const kLuaPrelude;
}  // namespace twinfer
