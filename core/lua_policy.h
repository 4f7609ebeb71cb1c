// Policies written in Lua (`--scheduling-policy lua:FILE` and friends). A policy file returns a
// table; each kind reads its own fields (docs/lua.md):
//   queue order      { key = function(req, now) -> number, time_dependent = false,
//                      needs_prefix_hits = false }        smaller key is served first
//   preemption victim { choose = function(running, now) -> index }   1-based into `running`
//   eviction          { key = function(block) -> number }  smallest key is evicted first, or
//                     { evict = function(candidates) -> block id }   full scan, for prototypes
//   block size        { block_size = function(max_model_len, mean_prompt, mean_output) -> int }
//   speculative tree  { tree = function(batch_size, acceptance_rate) -> {b1, b2, ...} }
// One file may serve several kinds. Every policy object owns its own sandboxed state, so runs
// never share Lua state. A script error, a wrong return type or an out-of-range answer throws
// ConfigError naming the file and line; thrown from inside the engine it aborts run_config.
#pragma once
#include <memory>
#include <string>

#include "core/lua_sandbox.h"
#include "core/policy.h"

namespace twinfer {

std::unique_ptr<QueuePolicy> make_lua_queue_policy(const std::string& file,
                                                   const LuaLimits& limits = LuaLimits::policy());
std::unique_ptr<VictimPolicy> make_lua_victim_policy(const std::string& file,
                                                     const LuaLimits& limits = LuaLimits::policy());
std::unique_ptr<EvictionPolicy> make_lua_eviction_policy(
    const std::string& file, const LuaLimits& limits = LuaLimits::policy());
std::unique_ptr<BlockSizePolicy> make_lua_block_size_policy(
    const std::string& file, const LuaLimits& limits = LuaLimits::policy());
std::unique_ptr<SpecTreePolicy> make_lua_spec_tree_policy(
    const std::string& file, const LuaLimits& limits = LuaLimits::policy());

// Registers the factories above for "lua:FILE" policy names (policies/registry.h), with
// `limits` applied to every policy state. Call once at start-up; calling again replaces them.
void register_lua_policies(const LuaLimits& limits = LuaLimits::policy());

}  // namespace twinfer
