// The C side of the experiment API. Lua calls the member functions below through trampolines;
// each member catches every C++ exception and reports failure by leaving a message on the Lua
// stack and returning -1, and only then, with no C++ object alive, does the trampoline raise
// the Lua error (longjmp) — see the binding rules in core/lua_sandbox.h.
#include "app/lua_experiment.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <lua.hpp>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "app/lua_prelude.h"
#include "app/run.h"
#include "core/error.h"
#include "core/lua_json.h"

namespace fs = std::filesystem;

namespace twinfer {

RunConfig run_config_from_flat(const Json& flat, const RunConfig& base, const std::string& where) {
  if (!flat.is_object()) throw ConfigError(where + ": expected a table of run flags", 2);
  RunConfig c = base;
  std::map<std::string, std::string> seen;  // field name -> the key that set it
  for (const auto& [k, v] : flat.as_object()) {
    const ConfigField* f = find_config_field(k);
    if (!f)
      throw ConfigError(where + ": unknown key '" + k +
                            "'; expected a run flag such as max_num_seqs or scheduling_policy "
                            "(see `twinfer run --help`)",
                        2);
    auto [it, fresh] = seen.emplace(f->name, k);
    if (!fresh)
      throw ConfigError(where + ": '" + f->name + "' given twice (as '" + it->second + "' and '" +
                            k + "')",
                        2);
    try {
      if (v.is_string()) set_config_field(c, f->name, v.as_string());
      else if (f->kind == ConfigField::Kind::String)
        throw ConfigError("--" + f->name + ": invalid value " + v.dump() + " (expected a string)", 2);
      else f->set(c, v);
    } catch (const ConfigError& e) {
      throw ConfigError(where + ": " + e.what(), e.exit_code());
    }
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what(), e.exit_code());
  }
  return c;
}

Json run_config_to_flat(const RunConfig& c) {
  Json j = Json::object();
  for (const ConfigField& f : config_fields()) {
    std::string key = f.name;
    std::replace(key.begin(), key.end(), '-', '_');
    j[key] = f.get(c);
  }
  return j;
}

namespace {

constexpr const char* kPreludeChunk = "=twinfer";

struct Job {
  RunConfig cfg;
  std::string name;
  std::string out;  // relative to the output folder, as the script gave it
  bool per_request = false;  // attach per-request columns to the result (not to results.json)
  bool per_step = false;     // attach per-step columns likewise
  Json result;
  std::string error;
};

// Lifecycle times relative to arrival, ms; NaN (never reached) becomes -1 so Lua sees numbers.
double ms_since(double t, double arrival) {
  return std::isnan(t) || std::isnan(arrival) ? -1.0 : (t - arrival) * 1e3;
}

// Column arrays (one Lua list per field, same length) keep a 10^4-row run cheap to hand over.
Json request_columns(const RunRecord& r) {
  Json::Array id, prompt, output, prio, pre, hit, ttft, e2e, queue, arrival, done;
  for (const RequestRecord& q : r.requests) {
    id.emplace_back(static_cast<int64_t>(q.id));
    prompt.emplace_back(q.prompt_len);
    output.emplace_back(q.output_len);
    prio.emplace_back(q.priority);
    pre.emplace_back(q.num_preemptions);
    hit.emplace_back(q.prefix_hit_tokens);
    arrival.emplace_back(q.times.arrival);
    ttft.emplace_back(ms_since(q.times.first_token, q.times.arrival));
    e2e.emplace_back(ms_since(q.times.finished, q.times.arrival));
    queue.emplace_back(ms_since(q.times.first_scheduled, q.times.arrival));
    done.emplace_back(q.status == SeqStatus::finished);
  }
  Json j = Json::object();
  j["id"] = std::move(id);
  j["prompt_len"] = std::move(prompt);
  j["output_len"] = std::move(output);
  j["priority"] = std::move(prio);
  j["num_preemptions"] = std::move(pre);
  j["prefix_hit_tokens"] = std::move(hit);
  j["arrival_s"] = std::move(arrival);
  j["ttft_ms"] = std::move(ttft);
  j["e2e_ms"] = std::move(e2e);
  j["queue_ms"] = std::move(queue);
  j["finished"] = std::move(done);
  return j;
}

Json step_columns(const RunRecord& r) {
  Json::Array start, dur, pf, dec, running, waiting, swapped, used, pre;
  for (const StepRecord& s : r.steps) {
    start.emplace_back(s.start_s);
    dur.emplace_back(s.duration_s);
    pf.emplace_back(s.num_prefill_tokens);
    dec.emplace_back(s.num_decode_tokens);
    running.emplace_back(s.num_running);
    waiting.emplace_back(s.num_waiting);
    swapped.emplace_back(s.num_swapped);
    used.emplace_back(s.kv_blocks_used);
    pre.emplace_back(static_cast<int64_t>(s.preempted_end - s.preempted_begin));
  }
  Json j = Json::object();
  j["start_s"] = std::move(start);
  j["duration_s"] = std::move(dur);
  j["prefill_tokens"] = std::move(pf);
  j["decode_tokens"] = std::move(dec);
  j["running"] = std::move(running);
  j["waiting"] = std::move(waiting);
  j["swapped"] = std::move(swapped);
  j["kv_blocks_used"] = std::move(used);
  j["preempted"] = std::move(pre);
  return j;
}

class Experiment {
 public:
  explicit Experiment(const ExperimentOptions& o) : opt_(o), sb_(o.limits) {
    out_dir_ = o.out_dir.empty() ? "out/" + fs::path(o.script).stem().string() : o.out_dir;
    base_.backend = o.backend;
    threads_ = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }

  ExperimentResult run();

  // The primitives behind twinfer.*; each returns its result count or -1 (message on the stack).
  int run_many(lua_State* L);
  int config(lua_State* L);
  int plan(lua_State* L);
  int write(lua_State* L);
  int write_json(lua_State* L);
  int include(lua_State* L);

  const ExperimentOptions& options() const { return opt_; }
  const std::string& out_dir() const { return out_dir_; }

 private:
  ExperimentOptions opt_;
  LuaSandbox sb_;
  std::string out_dir_;
  RunConfig base_;
  int threads_ = 1;
  ExperimentResult res_;
  std::mutex log_mutex_;

  Job make_job(const Json& j, const std::string& where) const;
  void execute(std::vector<Job>& jobs, int threads);
  void run_job(Job& job, size_t index, size_t total, bool progress);
  std::string output_path(const std::string& name, const char* fn);
  void write_file(const std::string& name, const std::string& text, const char* fn);
};

Experiment* self(lua_State* L) {
  return static_cast<Experiment*>(lua_touserdata(L, lua_upvalueindex(1)));
}

// Prefixes "script.lua:LINE: " of the innermost frame outside the prelude, then raises.
int raise_from_script(lua_State* L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0 && std::strcmp(ar.source, kPreludeChunk) != 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      lua_insert(L, -2);
      lua_concat(L, 2);
      break;
    }
  }
  return lua_error(L);
}

template <int (Experiment::*M)(lua_State*)>
int trampoline(lua_State* L) {
  const int n = (self(L)->*M)(L);
  return n >= 0 ? n : raise_from_script(L);
}

// twinfer.log(...): tostring of each argument, tab-separated, on stderr. Pure C: may raise.
int l_log(lua_State* L) {
  const int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  std::fprintf(stderr, "[exp] %s\n", lua_tostring(L, -1));
  return 0;
}

struct SetupData {
  Experiment* ex;
};

void set_closure(lua_State* L, Experiment* ex, const char* name, lua_CFunction f) {
  lua_pushlightuserdata(L, ex);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

// Builds the globals `twinfer` and `args`, then runs the prelude with (twinfer, primitives).
int setup(lua_State* L) {
  Experiment* ex = static_cast<SetupData*>(lua_touserdata(L, 1))->ex;
  const ExperimentOptions& o = ex->options();
  lua_newtable(L);  // twinfer
  const int t = lua_gettop(L);
  lua_pushstring(L, o.backend.c_str());
  lua_setfield(L, t, "backend");
  lua_pushstring(L, ex->out_dir().c_str());
  lua_setfield(L, t, "out_dir");
  lua_pushcfunction(L, l_log);
  lua_setfield(L, t, "log");
  set_closure(L, ex, "write", trampoline<&Experiment::write>);
  set_closure(L, ex, "write_json", trampoline<&Experiment::write_json>);
  set_closure(L, ex, "plan", trampoline<&Experiment::plan>);
  // twinfer.include("path.lua"): runs a Lua text file, resolved against the script's folder,
  // and returns what it returns (shared helpers: experiments have no `require`).
  set_closure(L, ex, "include", trampoline<&Experiment::include>);
  // twinfer.run_all({cfg, ...} [, {threads = N}]): heterogeneous configs, run like a sweep.
  set_closure(L, ex, "run_all", trampoline<&Experiment::run_many>);
  lua_createtable(L, 0, static_cast<int>(o.args.size()));  // args
  for (const auto& kv : o.args) {
    lua_pushlstring(L, kv.second.data(), kv.second.size());
    lua_setfield(L, -2, kv.first.c_str());
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, t, "args");
  lua_setglobal(L, "args");
  lua_pushvalue(L, t);
  lua_setglobal(L, "twinfer");
  if (luaL_loadbufferx(L, kLuaPrelude, std::strlen(kLuaPrelude), kPreludeChunk, "t") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, t);
  lua_newtable(L);  // primitives
  set_closure(L, ex, "run_many", trampoline<&Experiment::run_many>);
  set_closure(L, ex, "config", trampoline<&Experiment::config>);
  lua_call(L, 2, 0);
  return 0;
}

ExperimentResult Experiment::run() {
  res_.out_dir = out_dir_;
  SetupData data{this};
  int status = sb_.protected_call(setup, &data, 0, 0);
  if (status != LUA_OK) throw ConfigError(sb_.pop_error(status, "Lua experiment setup"));
  sb_.load_file(opt_.script);
  status = sb_.call(0, 0);
  std::string error;
  if (status != LUA_OK) {
    error = sb_.pop_error(status);
    // Messages raised in Lua start with "script:line:"; budget messages name no file.
    if (error.rfind(opt_.script, 0) != 0) error = opt_.script + ": " + error;
  }
  // Results of the runs that finished are kept even when the script failed later on.
  if (!res_.results.as_array().empty()) write_file("results.json", res_.results.dump(2) + "\n", "exp");
  if (!error.empty()) throw ConfigError(error);
  return res_;
}

Job Experiment::make_job(const Json& j, const std::string& where) const {
  if (!j.is_object()) throw ConfigError(where + ": expected a table of run flags, got " + j.dump(), 2);
  Job job;
  Json knobs = Json::object();
  for (const auto& [k, v] : j.as_object()) {
    if (k == "per_request" || k == "per_step") {
      if (!v.is_bool()) throw ConfigError(where + ": '" + k + "' must be a boolean", 2);
      (k == "per_request" ? job.per_request : job.per_step) = v.as_bool();
    } else if (k == "name" || k == "out") {
      if (!v.is_string()) throw ConfigError(where + ": '" + k + "' must be a string", 2);
      (k == "name" ? job.name : job.out) = v.as_string();
    } else {
      knobs[k] = v;
    }
  }
  job.cfg = run_config_from_flat(knobs, base_, where + (job.name.empty() ? "" : " (" + job.name + ")"));
  return job;
}

void Experiment::run_job(Job& job, size_t index, size_t total, bool progress) {
  try {
    RunOptions ro;
    ro.quiet = true;
    ro.progress = progress;
    ro.kv_events = !job.cfg.out.empty();
    RunResult r = run_config(job.cfg, ro);
    job.result = r.summary.to_json();
    job.result["config"] = run_config_to_flat(job.cfg);
    job.result["memory"] = r.memory.to_json();
    if (const Json* res = r.config.get("resolved"))
      if (const Json* m = res->get("model")) job.result["model"] = *m;
    if (job.per_request) job.result["per_request"] = request_columns(r.record);
    if (job.per_step) job.result["per_step"] = step_columns(r.record);
    if (!job.name.empty()) job.result["name"] = job.name;
    if (!job.out.empty()) job.result["out"] = job.out;
    if (!opt_.quiet) {
      std::lock_guard<std::mutex> lock(log_mutex_);
      std::fprintf(stderr, "[exp] run %zu/%zu%s%s: %lld requests, %.3f s simulated/served, %.2f s wall\n",
                   index + 1, total, job.name.empty() ? "" : " ", job.name.c_str(),
                   static_cast<long long>(r.summary.requests), r.summary.duration_s, r.summary.wall_s);
    }
  } catch (const std::exception& e) {
    job.error = e.what();
  }
}

void Experiment::execute(std::vector<Job>& jobs, int threads) {
  // Hardware backends own the device: their runs go one at a time.
  bool all_sim = true;
  for (const Job& j : jobs) all_sim &= j.cfg.backend == "sim";
  const size_t n = std::min(jobs.size(), all_sim ? static_cast<size_t>(std::max(1, threads)) : size_t{1});
  const bool progress = n == 1 && jobs.size() == 1 && !opt_.quiet;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) run_job(jobs[i], i, jobs.size(), progress);
  };
  if (n <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(n);
    for (size_t t = 0; t < n; ++t) pool.emplace_back(worker);
    for (std::thread& t : pool) t.join();
  }
  for (size_t i = 0; i < jobs.size(); ++i)
    if (!jobs[i].error.empty())
      throw ConfigError("run " + std::to_string(i + 1) + " of " + std::to_string(jobs.size()) +
                        (jobs[i].name.empty() ? "" : " (" + jobs[i].name + ")") + " failed: " +
                        jobs[i].error);
}

int Experiment::run_many(lua_State* L) {
  try {
    if (lua_type(L, 1) != LUA_TTABLE)
      throw ConfigError(std::string("twinfer.run: expected a table of run flags, got ") + lua_type_phrase(L, 1));
    Json list, opts;
    std::string err;
    if (!lua_to_json(L, 1, list, err, "runs")) throw ConfigError("twinfer.run: " + err);
    int threads = threads_;
    if (!lua_isnoneornil(L, 2)) {
      if (!lua_to_json(L, 2, opts, err, "opts") || !opts.is_object())
        throw ConfigError("twinfer.sweep: opts must be a table such as {threads = 4}" + (err.empty() ? "" : ": " + err));
      for (const auto& [k, v] : opts.as_object()) {
        if (k != "threads" || !v.is_number() || v.as_number() < 1)
          throw ConfigError("twinfer.sweep: unknown or invalid option '" + k + "' (expected threads = N >= 1)");
        threads = static_cast<int>(v.as_number());
      }
    }
    if (list.is_object() && list.as_object().empty()) list = Json::array();
    std::vector<Job> jobs;
    const auto& arr = list.as_array("runs");
    for (size_t i = 0; i < arr.size(); ++i) {
      jobs.push_back(make_job(arr[i], arr.size() == 1 ? "run config" : "run config " + std::to_string(i + 1)));
      Job& job = jobs.back();
      if (!job.out.empty()) job.cfg.out = output_path(job.out, "run");
    }
    execute(jobs, threads);
    Json out = Json::array();
    for (Job& j : jobs) {
      // Per-request/step columns are for the script; results.json stays a small summary.
      Json kept = j.result;
      kept.as_object_mut().erase("per_request");
      kept.as_object_mut().erase("per_step");
      res_.results.push_back(std::move(kept));
      out.push_back(std::move(j.result));
    }
    return lua_push_json(L, out) == LUA_OK ? 1 : -1;
  } catch (const std::exception& e) {
    lua_push_string_safe(L, e.what());
    return -1;
  }
}

int Experiment::config(lua_State* L) {
  try {
    Json j;
    std::string err;
    if (!lua_to_json(L, 1, j, err, "config")) throw ConfigError("twinfer.config: " + err);
    if (j.is_array() && j.as_array().empty()) j = Json::object();
    const Job job = make_job(j, "twinfer.config");
    Json flat = run_config_to_flat(job.cfg);
    if (!job.name.empty()) flat["name"] = job.name;
    if (!job.out.empty()) flat["out"] = job.out;
    return lua_push_json(L, flat) == LUA_OK ? 1 : -1;
  } catch (const std::exception& e) {
    lua_push_string_safe(L, e.what());
    return -1;
  }
}

// The memory plan a run config gets, without running it (model/hardware presets resolved).
int Experiment::plan(lua_State* L) {
  try {
    Json j;
    std::string err;
    if (!lua_to_json(L, 1, j, err, "config")) throw ConfigError("twinfer.plan: " + err);
    if (j.is_array() && j.as_array().empty()) j = Json::object();
    const Job job = make_job(j, "twinfer.plan");
    const ModelSpec model = resolve_model(job.cfg.model);
    const HardwareSpec hw = resolve_hardware(job.cfg.hardware);
    Json out = Json::object();
    out["memory"] = plan_memory(model, hw.memory_bytes, job.cfg).to_json();
    out["model"] = model.to_json();
    out["hardware"] = hw.to_json();
    out["config"] = run_config_to_flat(job.cfg);
    return lua_push_json(L, out) == LUA_OK ? 1 : -1;
  } catch (const std::exception& e) {
    lua_push_string_safe(L, e.what());
    return -1;
  }
}

std::string Experiment::output_path(const std::string& name, const char* fn) {
  auto bad = [&](const char* why) {
    return ConfigError(std::string("twinfer.") + fn + ": '" + name + "' " + why +
                       "; expected a relative path inside the output folder (letters, digits, "
                       "'._-=,+' and '/')");
  };
  if (name.empty()) throw bad("is empty");
  if (name.front() == '/') throw bad("is absolute");
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('/', start), name.size());
    const std::string part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") throw bad("has an empty, '.' or '..' component");
    for (char ch : part)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr("._-=,+", ch))
        throw bad("has a character outside the allowed set");
    start = end + 1;
  }
  return out_dir_ + "/" + name;
}

void Experiment::write_file(const std::string& name, const std::string& text, const char* fn) {
  const std::string path = output_path(name, fn);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) throw ConfigError(std::string("twinfer.") + fn + ": cannot create " + fs::path(path).parent_path().string() + ": " + ec.message());
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw ConfigError(std::string("twinfer.") + fn + ": cannot write " + path);
  res_.files.push_back(name);
}

int Experiment::write(lua_State* L) {
  try {
    if (lua_type(L, 1) != LUA_TSTRING || lua_type(L, 2) != LUA_TSTRING)
      throw ConfigError(std::string("twinfer.write(name, text): expected two strings, got ") +
                        lua_type_phrase(L, 1) + " and " + lua_type_phrase(L, 2));
    size_t n = 0;
    const char* text = lua_tolstring(L, 2, &n);
    const std::string name = lua_tostring(L, 1);
    write_file(name, std::string(text, n), "write");
    lua_push_string_safe(L, out_dir_ + "/" + name);
    return 1;
  } catch (const std::exception& e) {
    lua_push_string_safe(L, e.what());
    return -1;
  }
}

int Experiment::include(lua_State* L) {
  // Every C++ object dies inside this block: the chunk runs after it, and an error it raises
  // unwinds past this frame with longjmp.
  {
    std::string path;
    try {
      if (lua_type(L, 1) != LUA_TSTRING)
        throw ConfigError(std::string("twinfer.include(path): path must be a string, got ") +
                          lua_type_phrase(L, 1));
      path = (fs::path(opt_.script).parent_path() / lua_tostring(L, 1)).lexically_normal().string();
      std::ifstream in(path, std::ios::binary);
      if (!in) throw ConfigError("twinfer.include: cannot open " + path);
      std::ostringstream ss;
      ss << in.rdbuf();
      const std::string code = ss.str();
      if (luaL_loadbufferx(L, code.data(), code.size(), ("@" + path).c_str(), "t") != LUA_OK)
        return -1;  // the syntax error is on the stack
    } catch (const std::exception& e) {
      lua_push_string_safe(L, e.what());
      return -1;
    }
  }
  const int base = lua_gettop(L) - 1;
  lua_call(L, 0, LUA_MULTRET);
  return lua_gettop(L) - base;
}

int Experiment::write_json(lua_State* L) {
  try {
    if (lua_type(L, 1) != LUA_TSTRING)
      throw ConfigError(std::string("twinfer.write_json(name, value): name must be a string, got ") +
                        lua_type_phrase(L, 1));
    Json v;
    std::string err;
    if (!lua_to_json(L, 2, v, err, "value")) throw ConfigError("twinfer.write_json: " + err);
    const std::string name = lua_tostring(L, 1);
    write_file(name, v.dump(2) + "\n", "write_json");
    lua_push_string_safe(L, out_dir_ + "/" + name);
    return 1;
  } catch (const std::exception& e) {
    lua_push_string_safe(L, e.what());
    return -1;
  }
}

}  // namespace

ExperimentResult run_experiment(const ExperimentOptions& opt) {
  Experiment ex(opt);
  return ex.run();
}

}  // namespace twinfer
