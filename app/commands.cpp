#include "app/commands.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "core/json.h"
#include "core/model_spec.h"
#include "sim/hardware.h"

namespace po = boost::program_options;

namespace twinfer {

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"run", "run a workload through the engine (--backend sim|cpu|cuda) and write its outputs", cmd_run},
      {"bench", "measure a workload on a backend (default cuda): offline or online, tok/s and latency percentiles", cmd_bench},
      {"compare", "simulate the twin of a run folder and compare it metric by metric", cmd_compare},
      {"calibrate", "measure the GPU (--backend cuda) and fit the cost model: writes a --hw-profile", cmd_calibrate},
      {"exp", "run a Lua experiment script: runs, sweeps, tables (twinfer exp FILE.lua --help)", cmd_exp},
      {"generate", "stream tokens from a checkpoint on the CPU reference", cmd_generate},
      {"make-model", "write a random checkpoint (config.json + safetensors) of a preset shape", cmd_make_model},
      {"presets", "list the model and hardware presets", cmd_presets},
      {"version", "print the version", cmd_version},
  };
  return list;
}

void add_run_options(po::options_description& d, const RunConfig& defaults) {
  d.add_options()("config", po::value<std::string>()->value_name("FILE"),
                  "repeat a run: load its config.json, then apply the flags given");
  for (const auto& f : config_fields()) {
    std::string help = f.help;
    const Json def = f.get(defaults);
    help += " [default: " + (def.is_string() ? def.as_string() : def.dump()) + "]";
    if (f.kind == ConfigField::Kind::Bool)
      d.add_options()(f.name.c_str(), po::value<std::string>()->implicit_value("true")->value_name("BOOL"), help.c_str());
    else
      d.add_options()(f.name.c_str(), po::value<std::string>()->value_name(f.kind == ConfigField::Kind::String ? "STR" : "NUM"), help.c_str());
  }
}

void apply_run_flags(const po::variables_map& vm, RunConfig& c) {
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    c.apply_json(Json::parse_file(path), path);
  }
  for (const auto& f : config_fields())
    if (vm.count(f.name)) set_config_field(c, f.name, vm[f.name].as<std::string>());
}

bool parse_flags(const std::vector<std::string>& args, const po::options_description& all,
                 const po::options_description& shown, po::variables_map& vm,
                 const po::positional_options_description* positional) {
  po::command_line_parser parser(args);
  parser.options(all);
  if (positional) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << shown << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

void print_summary_table(const Summary& s, FILE* f) {
  std::fprintf(f, "\n%-22s %s\n", "backend", s.backend.c_str());
  std::fprintf(f, "%-22s %lld finished, %lld failed, %lld unfinished\n", "requests",
               static_cast<long long>(s.finished), static_cast<long long>(s.failed),
               static_cast<long long>(s.unfinished));
  std::fprintf(f, "%-22s %.3f s (%lld steps, %.3f s wall)\n", "duration", s.duration_s,
               static_cast<long long>(s.steps), s.wall_s);
  std::fprintf(f, "%-22s %.2f req/s, %.1f output tok/s, %.1f total tok/s\n", "throughput",
               s.req_per_s, s.output_tok_per_s, s.total_tok_per_s);
  std::fprintf(f, "%-22s %10s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p90", "p95", "p99");
  auto row = [&](const char* name, const Percentiles& p) {
    std::fprintf(f, "  %-20s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, p.mean, p.p50, p.p90, p.p95, p.p99);
  };
  row("TTFT", s.ttft_ms);
  row("TPOT", s.tpot_ms);
  row("ITL", s.itl_ms);
  row("e2e", s.e2e_ms);
  row("queue", s.queue_ms);
  std::fprintf(f, "%-22s %lld\n", "preemptions", static_cast<long long>(s.preemptions));
  std::fprintf(f, "%-22s %d peak of %d blocks (%lld tokens)\n", "KV cache", s.kv_blocks_peak,
               s.kv_blocks_total, static_cast<long long>(s.kv_capacity_tokens));
  std::fprintf(f, "%-22s %.1f%%\n", "prefix-cache hit rate", 100.0 * s.prefix_cache_hit_rate);
}

int cmd_presets(const std::vector<std::string>&) {
  std::printf("models:\n");
  for (const auto& n : model_preset_names()) {
    ModelSpec m = *model_preset(n);
    std::printf("  %-14s %6.2fB params, %2lld layers, %3lld heads / %2lld kv heads, KV %6.0f B/token (bf16)\n",
                n.c_str(), static_cast<double>(m.param_count()) / 1e9,
                static_cast<long long>(m.num_layers), static_cast<long long>(m.num_heads),
                static_cast<long long>(m.num_kv_heads), m.kv_bytes_per_token(DType::bf16));
  }
  std::printf("hardware:\n");
  for (const auto& n : hardware_preset_names()) {
    HardwareSpec h = *hardware_preset(n);
    std::printf("  %-10s %5.0f GB, %5.0f GB/s, %6.0f bf16 TFLOP/s  %s\n", n.c_str(),
                h.memory_bytes / 1e9, h.hbm_bandwidth / 1e9, h.bf16_flops / 1e12,
                h.description.c_str());
  }
  return 0;
}

int cmd_version(const std::vector<std::string>&) {
  std::printf("twinfer %s\n", twinfer_version().c_str());
  return 0;
}

}  // namespace twinfer
