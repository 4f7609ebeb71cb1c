// Builds the policies of core/policy.h by the names the CLI and config use
// (--scheduling-policy, --preemption-victim, --eviction-policy, block-size policy), and
// delegates "lua:FILE" names to factories that the Lua module registers at start-up.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/policy.h"

namespace twinfer {

// Unknown names throw ConfigError(exit 2) naming the flag and listing the allowed values.
std::unique_ptr<QueuePolicy> make_queue_policy(const std::string& name);
std::unique_ptr<VictimPolicy> make_victim_policy(const std::string& name);
std::unique_ptr<EvictionPolicy> make_eviction_policy(const std::string& name);
// "fixed" returns `fixed_size` (must be > 0); "auto" picks from the workload (docs/policies.md).
std::unique_ptr<BlockSizePolicy> make_block_size_policy(const std::string& name,
                                                        int32_t fixed_size);

// Built-in names, in help order. Every kind also accepts "lua:FILE" (see kLuaPolicyPrefix).
const std::vector<std::string>& queue_policy_names();
const std::vector<std::string>& victim_policy_names();
const std::vector<std::string>& eviction_policy_names();
const std::vector<std::string>& block_size_policy_names();

inline constexpr const char* kLuaPolicyPrefix = "lua:";

// Factories for "lua:FILE" policies; each receives FILE (the name without "lua:"). An empty
// member means that kind cannot be scripted in this build. The Lua module registers these once
// at start-up; until then every "lua:..." name throws ConfigError.
struct LuaFactories {
  std::function<std::unique_ptr<QueuePolicy>(const std::string& file)> queue;
  std::function<std::unique_ptr<VictimPolicy>(const std::string& file)> victim;
  std::function<std::unique_ptr<EvictionPolicy>(const std::string& file)> eviction;
  std::function<std::unique_ptr<BlockSizePolicy>(const std::string& file)> block_size;
};

// Replaces the registered factories (pass {} to unregister). Thread-safe.
void register_lua_policy_factories(LuaFactories f);

}  // namespace twinfer
