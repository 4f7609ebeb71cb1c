// Name -> policy. Built-in names map to the constructors in policies/builtin.h; "lua:FILE" goes
// to the factories the Lua module registered. Errors name the flag the user typed, so the CLI
// can print them as they are and exit 2.
#include "policies/registry.h"

#include <mutex>
#include <utility>

#include "core/error.h"
#include "policies/builtin.h"

namespace twinfer {
namespace {

std::mutex& lua_mutex() {
  static std::mutex m;
  return m;
}

LuaFactories& lua_factories() {
  static LuaFactories f;
  return f;
}

std::string allowed_list(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += n + ", ";
  return s + kLuaPolicyPrefix + "FILE";
}

[[noreturn]] void throw_unknown(const char* flag, const std::string& name,
                                const std::vector<std::string>& names) {
  throw ConfigError(std::string(flag) + ": unknown policy '" + name +
                        "'; allowed values: " + allowed_list(names),
                    2);
}

bool is_lua_name(const std::string& name) { return name.rfind(kLuaPolicyPrefix, 0) == 0; }

// Builds a "lua:FILE" policy through the registered factory for one kind (`member`).
template <class Policy>
std::unique_ptr<Policy> make_lua(
    const char* flag, const std::string& name,
    std::function<std::unique_ptr<Policy>(const std::string&)> LuaFactories::*member) {
  const std::string file = name.substr(std::char_traits<char>::length(kLuaPolicyPrefix));
  if (file.empty())
    throw ConfigError(std::string(flag) + ": '" + name + "' names no file; expected " +
                          kLuaPolicyPrefix + "FILE",
                      2);
  std::function<std::unique_ptr<Policy>(const std::string&)> factory;
  {
    std::lock_guard<std::mutex> lock(lua_mutex());
    factory = lua_factories().*member;
  }
  if (!factory)
    throw ConfigError(std::string(flag) + " " + name +
                          ": Lua policies are not available in this build",
                      2);
  std::unique_ptr<Policy> p = factory(file);
  if (!p)
    throw ConfigError(std::string(flag) + " " + name + ": the Lua policy factory built nothing",
                      2);
  return p;
}

constexpr const char* kQueueFlag = "--scheduling-policy";
constexpr const char* kVictimFlag = "--preemption-victim";
constexpr const char* kEvictionFlag = "--eviction-policy";
constexpr const char* kBlockSizeFlag = "--block-size";

}  // namespace

void register_lua_policy_factories(LuaFactories f) {
  std::lock_guard<std::mutex> lock(lua_mutex());
  lua_factories() = std::move(f);
}

const std::vector<std::string>& queue_policy_names() {
  static const std::vector<std::string> names = {"fcfs", "priority", "sjf", "lpm"};
  return names;
}
const std::vector<std::string>& victim_policy_names() {
  static const std::vector<std::string> names = {"last-arrived", "lowest-priority", "score"};
  return names;
}
const std::vector<std::string>& eviction_policy_names() {
  static const std::vector<std::string> names = {"lru", "lfu"};
  return names;
}
const std::vector<std::string>& block_size_policy_names() {
  static const std::vector<std::string> names = {"fixed", "auto"};
  return names;
}

std::unique_ptr<QueuePolicy> make_queue_policy(const std::string& name) {
  if (name == "fcfs") return policies::make_fcfs_queue();
  if (name == "priority") return policies::make_priority_queue();
  if (name == "sjf") return policies::make_sjf_queue();
  if (name == "lpm") return policies::make_lpm_queue();
  if (is_lua_name(name)) return make_lua(kQueueFlag, name, &LuaFactories::queue);
  throw_unknown(kQueueFlag, name, queue_policy_names());
}

std::unique_ptr<VictimPolicy> make_victim_policy(const std::string& name) {
  if (name == "last-arrived") return policies::make_last_arrived_victim();
  if (name == "lowest-priority") return policies::make_lowest_priority_victim();
  if (name == "score") return policies::make_score_victim();
  if (is_lua_name(name)) return make_lua(kVictimFlag, name, &LuaFactories::victim);
  throw_unknown(kVictimFlag, name, victim_policy_names());
}

std::unique_ptr<EvictionPolicy> make_eviction_policy(const std::string& name) {
  if (name == "lru") return policies::make_lru_eviction();
  if (name == "lfu") return policies::make_lfu_eviction();
  if (is_lua_name(name)) return make_lua(kEvictionFlag, name, &LuaFactories::eviction);
  throw_unknown(kEvictionFlag, name, eviction_policy_names());
}

std::unique_ptr<BlockSizePolicy> make_block_size_policy(const std::string& name,
                                                        int32_t fixed_size) {
  if (name == "fixed") {
    if (fixed_size <= 0)
      throw ConfigError(std::string(kBlockSizeFlag) +
                            ": expected a positive number of tokens per block, got " +
                            std::to_string(fixed_size),
                        2);
    return policies::make_fixed_block_size(fixed_size);
  }
  if (name == "auto") return policies::make_auto_block_size();
  if (is_lua_name(name)) return make_lua(kBlockSizeFlag, name, &LuaFactories::block_size);
  throw_unknown(kBlockSizeFlag, name, block_size_policy_names());
}

}  // namespace twinfer
