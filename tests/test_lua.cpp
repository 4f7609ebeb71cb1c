#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <lua.hpp>
#include <sstream>
#include <string>

#include "app/lua_experiment.h"
#include "app/run.h"
#include "core/error.h"
#include "core/lua_policy.h"
#include "core/lua_sandbox.h"

using namespace twinfer;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test case under the system temp dir.
fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("twinfer_lua_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_script(const fs::path& dir, const std::string& name, const std::string& text) {
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `code` as a chunk named "@test.lua" in a sandbox; returns "" on success, else the error.
std::string run_chunk(const std::string& code, LuaLimits limits = {1'000'000, size_t{16} << 20}) {
  LuaSandbox sb(limits);
  sb.load(code, "@test.lua");
  const int status = sb.call(0, 0);
  return status == LUA_OK ? "" : sb.pop_error(status);
}

template <class F>
std::string config_error(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError");
  return "";
}

std::string fixture(const char* name) { return std::string(TWINFER_SOURCE_DIR) + "/tests/fixtures/" + name; }
std::string repo(const char* path) { return std::string(TWINFER_SOURCE_DIR) + "/" + path; }

// A small trace replayed 20x faster into a small KV pool: queueing and preemptions happen.
RunConfig busy_config() {
  RunConfig c;
  c.workload.workload = fixture("azure_conv_head.csv");
  c.workload.time_scale = 0.05;
  c.engine.num_gpu_blocks_override = 400;
  c.engine.max_model_len = 4096;
  c.engine.max_num_seqs = 64;
  return c;
}

RunResult quiet_run(RunConfig c) {
  RunOptions o;
  o.quiet = true;
  return run_config(c, o);
}

}  // namespace

TEST_CASE("sandbox refuses io, os.execute, bytecode, require, dofile", "[lua]") {
  CHECK_THAT(run_chunk("io.open('/etc/passwd')"), Catch::Contains("test.lua:1:") && Catch::Contains("'io'"));
  CHECK_THAT(run_chunk("os.execute('true')"), Catch::Contains("execute"));
  CHECK_THAT(run_chunk("require('os')"), Catch::Contains("require"));
  CHECK_THAT(run_chunk("dofile('/etc/passwd')"), Catch::Contains("dofile"));
  CHECK_THAT(run_chunk("loadfile('/etc/passwd')"), Catch::Contains("loadfile"));
  CHECK_THAT(run_chunk("debug.traceback()"), Catch::Contains("debug"));
  CHECK_THAT(run_chunk("package.loadlib('x', 'y')"), Catch::Contains("package"));
  // load() of a string.dump result fails even when the caller asks for binary mode.
  CHECK(run_chunk(R"(
    local code = string.dump(function() return 1 end)
    local f, err = load(code, "dumped", "b")
    assert(f == nil, "bytecode was loaded")
    assert(err:find("binary chunk"), err)
    local g = load("return 7")
    assert(g() == 7)
    local h = load("return x", "env", "t", {x = 3})
    assert(h() == 3)
  )") == "");
  // What is allowed is there.
  CHECK(run_chunk("assert(os.clock() >= 0 and os.time() > 0 and os.date('%Y'))\n"
                  "assert(os.getenv == nil and os.remove == nil and os.exit == nil)\n"
                  "assert(string.format('%d', 3) == '3' and math.max(1, 2) == 2 and table.concat({'a'}) == 'a')") == "");
  LuaSandbox sb;
  CHECK_THROWS_WITH(sb.load(std::string("\x1bLua") + "\x54", "=bytecode"), Catch::Contains("binary chunk"));
}

TEST_CASE("runaway scripts are stopped by the instruction and memory budgets", "[lua]") {
  CHECK_THAT(run_chunk("local i = 0\nwhile true do i = i + 1 end"),
             Catch::Contains("test.lua:2:") && Catch::Contains("instruction budget exceeded"));
  // Catching the budget error does not buy more instructions.
  CHECK_THAT(run_chunk("while true do pcall(function() while true do end end) end"),
             Catch::Contains("instruction budget exceeded"));
  CHECK_THAT(run_chunk("local s = 'x'\nwhile true do s = s .. s end"), Catch::Contains("memory budget exceeded (16 MiB"));
  CHECK_THAT(run_chunk("local t = {}\nfor i = 1, 1e9 do t[i] = {i} end", {1'000'000'000, size_t{8} << 20}),
             Catch::Contains("memory budget exceeded (8 MiB"));
  // The state stays usable after a budget error: budgets are per call.
  LuaSandbox sb({100'000, size_t{16} << 20});
  sb.load("while true do end", "=loop");
  CHECK(sb.call(0, 0) != LUA_OK);
  CHECK_THAT(sb.pop_error(LUA_ERRRUN), Catch::Contains("budget"));
  sb.load("local n = 0 for i = 1, 1000 do n = n + i end return n", "=sum");
  REQUIRE(sb.call(0, 1) == LUA_OK);
  CHECK(lua_tointeger(sb.state(), -1) == 500500);
}

TEST_CASE("script errors carry file, line and traceback", "[lua]") {
  CHECK_THAT(run_chunk("local function f()\n  error('boom')\nend\nf()"),
             Catch::Contains("test.lua:2: boom") && Catch::Contains("stack traceback") &&
                 Catch::Contains("test.lua:4"));
  const std::string syntax = config_error([] { run_chunk("local x = = 1"); });
  CHECK_THAT(syntax, Catch::Contains("syntax error") && Catch::Contains("test.lua:1:"));
}

TEST_CASE("a Lua FCFS policy reproduces the C++ FCFS run exactly", "[lua]") {
  register_lua_policies();
  const fs::path dir = temp_dir("fcfs_twin");
  RunConfig cpp = busy_config();
  cpp.out = (dir / "cpp").string();
  RunConfig lua = cpp;
  lua.out = (dir / "lua").string();
  lua.engine.scheduling_policy = "lua:" + repo("scripts/lua/fcfs.lua");
  const RunResult a = quiet_run(cpp);
  const RunResult b = quiet_run(lua);
  REQUIRE(a.summary.steps > 0);
  CHECK(a.summary.preemptions > 0);  // the comparison covers preemption and re-queueing
  const std::string steps = read_file(dir / "cpp" / "steps.csv");
  CHECK(steps.size() > 100);
  CHECK(steps == read_file(dir / "lua" / "steps.csv"));
  CHECK(read_file(dir / "cpp" / "requests.csv") == read_file(dir / "lua" / "requests.csv"));
}

TEST_CASE("Lua victim and eviction twins match last-arrived and LRU", "[lua]") {
  register_lua_policies();
  const fs::path dir = temp_dir("twins");
  const std::string victim = write_script(dir, "last.lua", R"(
    return { choose = function(running, now)
      local best = 1
      for i, r in ipairs(running) do
        local b = running[best]
        if r.arrival > b.arrival or (r.arrival == b.arrival and r.id > b.id) then best = i end
      end
      return best
    end })");
  const std::string lru = write_script(dir, "lru.lua", "return { key = function(b) return b.last_access end }");
  RunConfig cpp = busy_config();
  cpp.engine.enable_prefix_caching = true;
  cpp.workload.workload = "synthetic";
  cpp.workload.arrival = "poisson";
  cpp.workload.rate = 40;
  cpp.workload.num_requests = 200;
  cpp.workload.prefix_len = 256;
  cpp.workload.input_len = "uniform:300:900";
  cpp.workload.output_len = "uniform:20:200";
  cpp.engine.num_gpu_blocks_override = 300;
  cpp.out = (dir / "cpp").string();
  RunConfig lua = cpp;
  lua.engine.preemption_victim = "lua:" + victim;
  lua.engine.eviction_policy = "lua:" + lru;
  lua.out = (dir / "lua").string();
  const RunResult a = quiet_run(cpp);
  quiet_run(lua);
  CHECK(a.summary.preemptions > 0);
  CHECK(a.summary.prefix_cache_hit_rate > 0);
  CHECK(read_file(dir / "cpp" / "steps.csv") == read_file(dir / "lua" / "steps.csv"));
  CHECK(read_file(dir / "cpp" / "kv_events.csv") == read_file(dir / "lua" / "kv_events.csv"));
}

TEST_CASE("Lua eviction: key heap order, erase, evict() scan", "[lua]") {
  const fs::path dir = temp_dir("evict");
  auto lfu = make_lua_eviction_policy(write_script(dir, "lfu.lua",
      "return { key = function(b) return b.access_count * 1000 + b.last_access end }"));
  lfu->insert(5, 3, 1.0);
  lfu->insert(2, 1, 2.0);
  lfu->insert(9, 1, 1.5);
  lfu->insert(4, 2, 0.0);
  lfu->erase(9);
  lfu->insert(7, 1, 2.0);  // ties with block 2: insertion order decides
  CHECK(lfu->size() == 4);
  std::vector<BlockId> order;
  while (auto b = lfu->pop_victim()) order.push_back(*b);
  CHECK(order == std::vector<BlockId>{2, 7, 4, 5});
  CHECK(lfu->size() == 0);

  auto scan = make_lua_eviction_policy(write_script(dir, "scan.lua", R"(
    return { evict = function(c)
      local best = c[1]
      for _, b in ipairs(c) do if b.id > best.id then best = b end end
      return best.id
    end })"));
  for (BlockId b : {3, 8, 1}) scan->insert(b, 1, 0.0);
  scan->erase(8);
  CHECK(scan->pop_victim() == std::optional<BlockId>(3));
  CHECK(scan->pop_victim() == std::optional<BlockId>(1));
  CHECK(!scan->pop_victim());

  auto bad = make_lua_eviction_policy(write_script(dir, "bad.lua", "return {\n evict = function(c) return 42 end }"));
  bad->insert(1, 1, 0.0);
  CHECK_THAT(config_error([&] { bad->pop_victim(); }),
             Catch::Contains("bad.lua:2: evict() returned block id 42, which is not a candidate"));
}

TEST_CASE("Lua policies report wrong answers with file and line", "[lua]") {
  const fs::path dir = temp_dir("bad_policies");
  RequestView v;
  v.id = 1;
  v.prompt_len = 10;
  auto str = make_lua_queue_policy(write_script(dir, "str.lua", "return {\n\n key = function(r) return 'soon' end }"));
  CHECK_THAT(config_error([&] { str->key(v, 0.0); }),
             Catch::Contains("str.lua:3: key() returned a string; expected a number"));
  auto boom = make_lua_queue_policy(write_script(dir, "boom.lua", "return { key = function(r)\n return r.nope.x end }"));
  CHECK_THAT(config_error([&] { boom->key(v, 0.0); }),
             Catch::Contains("boom.lua:2:") && Catch::Contains("nope") && Catch::Contains("stack traceback"));
  auto out_of_range = make_lua_victim_policy(write_script(dir, "far.lua", "return { choose = function(r) return #r + 1 end }"));
  std::vector<RequestView> running(3, v);
  CHECK_THAT(config_error([&] { out_of_range->choose(running, 0.0); }),
             Catch::Contains("far.lua:1: choose() returned 4, which is outside running; expected an index in 1..3"));
  CHECK_THAT(config_error([&] { make_lua_queue_policy(write_script(dir, "none.lua", "return { choose = print }")); }),
             Catch::Contains("none.lua") && Catch::Contains("no 'key' function"));
  CHECK_THAT(config_error([&] { make_lua_queue_policy(write_script(dir, "num.lua", "return 3")); }),
             Catch::Contains("num.lua: the script returned an integer; expected a table"));
  CHECK_THAT(config_error([&] { make_lua_queue_policy(write_script(dir, "syn.lua", "return {\n key = function( }")); }),
             Catch::Contains("syntax error") && Catch::Contains("syn.lua:2:"));
  CHECK_THAT(config_error([&] { make_lua_queue_policy((dir / "missing.lua").string()); }),
             Catch::Contains("missing.lua: cannot open"));
  auto flag = [&] { make_lua_queue_policy(write_script(dir, "flag.lua", "return { key = print, time_dependent = 1 }")); };
  CHECK_THAT(config_error(flag), Catch::Contains("'time_dependent' is number; expected true or false"));

  auto bs = make_lua_block_size_policy(write_script(dir, "bs.lua",
      "return { block_size = function(len, p, o) return p > 500 and 32 or 0 end }"));
  CHECK(bs->choose(4096, 800.0, 100.0) == 32);
  CHECK_THAT(config_error([&] { bs->choose(4096, 100.0, 100.0); }), Catch::Contains("tokens per block in 1..4096"));
  auto tree = make_lua_spec_tree_policy(write_script(dir, "tree.lua",
      "return { tree = function(batch, acc) if batch > 8 then return {} end return {4, 2, acc > 0.5 and 2 or 1} end }"));
  CHECK(tree->shape(1, 0.8) == std::vector<int>{4, 2, 2});
  CHECK(tree->shape(1, 0.1) == std::vector<int>{4, 2, 1});
  CHECK(tree->shape(16, 0.8).empty());
  auto bad_tree = make_lua_spec_tree_policy(write_script(dir, "bt.lua", "return { tree = function() return {2, 0} end }"));
  CHECK_THAT(config_error([&] { bad_tree->shape(1, 0.5); }), Catch::Contains("a factor below 1 at depth 2"));
}

TEST_CASE("a policy error inside the engine aborts run_config with the message", "[lua]") {
  register_lua_policies();
  const fs::path dir = temp_dir("engine_error");
  RunConfig c = busy_config();
  c.engine.scheduling_policy = "lua:" + write_script(dir, "late.lua",
      "local n = 0\nreturn { key = function(r) n = n + 1\n if n > 50 then error('too many') end\n return r.arrival end }");
  CHECK_THAT(config_error([&] { quiet_run(c); }), Catch::Contains("late.lua:3: too many"));
  c.engine.scheduling_policy = "lua:" + write_script(dir, "spin.lua", "return { key = function(r) while true do end end }");
  CHECK_THAT(config_error([&] { quiet_run(c); }), Catch::Contains("spin.lua:1:") && Catch::Contains("instruction budget"));
}

TEST_CASE("experiment API: config and summary round trips, sweeps, tables, files", "[lua]") {
  register_lua_policies();
  const fs::path dir = temp_dir("exp");
  const std::string trace = fixture("azure_conv_head.csv");
  ExperimentOptions o;
  o.quiet = true;
  o.out_dir = (dir / "out").string();
  o.args = {{"workload", trace}, {"seqs", "16"}};
  o.script = write_script(dir, "exp.lua", R"(
    local c = twinfer.config{ ["max-num-seqs"] = 48, enable_prefix_caching = true, block_size = "32" }
    twinfer.write_json("config.json", c)
    local base = { workload = args.workload, time_scale = 0.05, num_gpu_blocks_override = 400, max_model_len = 4096 }
    local one = twinfer.run(base)
    twinfer.write_json("summary.json", one)
    local rs = twinfer.sweep(base, { max_num_seqs = { tonumber(args.seqs), 64 }, block_size = { 16, 32 } }, { threads = 2 })
    assert(#rs == 4)
    assert(rs[1].config.block_size == 16 and rs[1].config.max_num_seqs == 16, rs[1].name)
    assert(rs[2].config.block_size == 16 and rs[2].config.max_num_seqs == 64, rs[2].name)
    assert(rs[4].name == "block_size=32,max_num_seqs=64", rs[4].name)
    assert(rs[1].steps > 0 and rs[1].requests == one.requests)
    twinfer.write("t.md", twinfer.table(rs, { "name", { "seqs", "max_num_seqs" }, { "p50", "ttft_ms.p50" },
                                              { "x2", function(r) return r.requests * 2 end } }))
    twinfer.write_csv("t.csv", rs, { "max_num_seqs", "block_size", "requests" })
    twinfer.log("done", #rs)
  )");
  const ExperimentResult r = run_experiment(o);
  CHECK(r.results.as_array().size() == 5);
  CHECK(r.files == std::vector<std::string>{"config.json", "summary.json", "t.md", "t.csv", "results.json"});

  // The config written by the script reads back into the same RunConfig.
  Json flat = Json::parse_file((dir / "out" / "config.json").string());
  RunConfig expect;
  expect.engine.max_num_seqs = 48;
  expect.engine.enable_prefix_caching = true;
  expect.engine.block_size = 32;
  CHECK(run_config_from_flat(flat, RunConfig{}, "config.json").to_json().dump() == expect.to_json().dump());
  CHECK(run_config_to_flat(expect).dump() == flat.dump());

  // The summary a script got is the engine's summary (wall time aside).
  RunConfig base;
  base.workload.workload = trace;
  base.workload.time_scale = 0.05;
  base.engine.num_gpu_blocks_override = 400;
  base.engine.max_model_len = 4096;
  Summary direct = quiet_run(base).summary;
  Summary via_lua = Summary::from_json(Json::parse_file((dir / "out" / "summary.json").string()), "summary.json");
  direct.wall_s = via_lua.wall_s = 0;
  CHECK(direct.to_json().dump() == via_lua.to_json().dump());

  const std::string csv = read_file(dir / "out" / "t.csv");
  CHECK(csv.rfind("max_num_seqs,block_size,requests\n16,16,200\n64,16,200\n16,32,200\n64,32,200\n", 0) == 0);
  const std::string md = read_file(dir / "out" / "t.md");
  CHECK_THAT(md, Catch::StartsWith("| name") && Catch::Contains("| block_size=16,max_num_seqs=64") &&
                     Catch::Contains(" 400 |"));
  CHECK(Json::parse_file((dir / "out" / "results.json").string()).as_array().size() == 5);
}

TEST_CASE("experiment API: twinfer.include runs a helper file beside the script", "[lua]") {
  const fs::path dir = temp_dir("exp_include");
  ExperimentOptions o;
  o.quiet = true;
  o.out_dir = (dir / "out").string();
  write_script(dir, "helper.lua", "local H = { scale = tonumber(args.n or 1) }\nfunction H.twice(x) return 2 * x * H.scale end\nreturn H, 7");
  o.args = {{"n", "3"}};
  o.script = write_script(dir, "main.lua", R"(
    local H, extra = twinfer.include("helper.lua")
    assert(H.twice(5) == 30 and extra == 7)
    twinfer.write_json("r.json", { v = H.twice(1) })
  )");
  run_experiment(o);
  CHECK(Json::parse_file((dir / "out" / "r.json").string()).get("v")->as_number() == 6);
  o.script = write_script(dir, "missing.lua", "\ntwinfer.include('nope.lua')");
  CHECK_THAT(config_error([&] { run_experiment(o); }),
             Catch::Contains("missing.lua:2:") && Catch::Contains("cannot open") && Catch::Contains("nope.lua"));
  write_script(dir, "broken.lua", "return (");
  o.script = write_script(dir, "uses_broken.lua", "twinfer.include('broken.lua')");
  CHECK_THAT(config_error([&] { run_experiment(o); }), Catch::Contains("broken.lua"));
}

TEST_CASE("experiment API: bad configs and file names fail with the script line", "[lua]") {
  const fs::path dir = temp_dir("exp_bad");
  ExperimentOptions o;
  o.quiet = true;
  o.out_dir = (dir / "out").string();
  auto fails = [&](const std::string& code) {
    o.script = write_script(dir, "bad.lua", code);
    return config_error([&] { run_experiment(o); });
  };
  CHECK_THAT(fails("local x = 1\ntwinfer.run{ max_num_seq = 3 }"),
             Catch::Contains("bad.lua:2:") && Catch::Contains("unknown key 'max_num_seq'"));
  CHECK_THAT(fails("twinfer.run{ max_num_seqs = 3, ['max-num-seqs'] = 4 }"), Catch::Contains("given twice"));
  CHECK_THAT(fails("twinfer.run{ max_num_seqs = 'many' }"),
             Catch::Contains("--max-num-seqs: invalid value 'many' (expected an integer)"));
  CHECK_THAT(fails("twinfer.config{ scheduling_policy = 'random' }"), Catch::Contains("one of fcfs, priority"));
  CHECK_THAT(fails("\ntwinfer.write('../escape.txt', 'x')"), Catch::Contains("bad.lua:2:") && Catch::Contains("'..'"));
  CHECK_THAT(fails("twinfer.write('/tmp/abs.txt', 'x')"), Catch::Contains("is absolute"));
  CHECK_THAT(fails("twinfer.write_json('f.json', { f = print })"), Catch::Contains("value.f: cannot convert a function"));
  CHECK_THAT(fails("twinfer.sweep({}, { max_num_seqs = {} })"), Catch::Contains("has no values"));
  CHECK_THAT(fails("twinfer.run{ workload = 'no/such/trace.csv' }"), Catch::Contains("run 1 of 1 failed") && Catch::Contains("no/such/trace.csv"));
  CHECK_THAT(fails("while true do end"), Catch::Contains("bad.lua:1:") && Catch::Contains("instruction budget"));
  CHECK(!fs::exists(dir / "escape.txt"));
}

TEST_CASE("example policies: fair share puts a light tenant ahead of a flood; SJF ages", "[lua]") {
  auto fair = make_lua_queue_policy(repo("scripts/lua/fair_share.lua"));
  RequestView r;
  r.prompt_len = 1000;
  r.output_len = 1000;
  // Tenant 0 floods 50 requests at t=0; tenant 1 sends one at t=0.1.
  double last_flood = 0;
  for (int i = 0; i < 50; ++i) {
    r.id = i;
    last_flood = fair->key(r, 0.0);
  }
  r.id = 100;
  r.priority = 1;
  r.arrival_s = 0.1;
  const double light = fair->key(r, 0.1);
  CHECK(light < last_flood);
  CHECK(fair->key(r, 5.0) == light);  // a preempted request keeps its stamp

  auto sjf = make_lua_queue_policy(repo("scripts/lua/sjf_aging.lua"));
  CHECK(sjf->time_dependent());
  RequestView longr, shortr;
  longr.prompt_len = 2000;
  longr.max_tokens = 1000;
  shortr.prompt_len = 100;
  shortr.max_tokens = 100;
  shortr.arrival_s = 20.0;
  CHECK(sjf->key(shortr, 20.0) < sjf->key(longr, 5.0));
  CHECK(sjf->key(longr, 20.0) < sjf->key(shortr, 20.0));  // 20 s of waiting forgave 4,000 tokens
}
