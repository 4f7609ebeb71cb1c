// `make-model` writes a random checkpoint of any preset shape (benchmarks); `generate` streams
// tokens from a real checkpoint on the CPU reference backend.
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "app/commands.h"
#include "core/cpu_executor.h"
#include "core/driver.h"
#include "core/engine.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/sampling.h"
#include "core/tokenizer.h"
#include "core/weights.h"
#include "policies/registry.h"

namespace po = boost::program_options;

namespace twinfer {

int cmd_make_model(const std::vector<std::string>& args) {
  po::options_description d("twinfer make-model --shape PRESET --out DIR [options]\n\nWrites config.json and model.safetensors with random weights of a preset's shape.\n\nOptions");
  d.add_options()("help,h", "show this help")(
      "shape", po::value<std::string>()->required()->value_name("PRESET"), "model preset (see `twinfer presets`) or HF config.json")(
      "out", po::value<std::string>()->required()->value_name("DIR"), "output folder")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed")(
      "dtype", po::value<std::string>()->default_value("bf16"), "weight dtype: bf16, fp16 or fp32");
  po::variables_map vm;
  if (!parse_flags(args, d, d, vm)) return 0;
  ModelSpec spec = resolve_model(vm["shape"].as<std::string>());
  auto dt = parse_dtype(vm["dtype"].as<std::string>());
  if (!dt || (*dt != DType::bf16 && *dt != DType::f16 && *dt != DType::f32))
    throw ConfigError("--dtype: invalid value '" + vm["dtype"].as<std::string>() + "' (expected bf16, fp16 or fp32)", 2);
  write_random_checkpoint(spec, vm["out"].as<std::string>(), vm["seed"].as<uint64_t>(), *dt);
  std::printf("wrote %s: %s, %.3fB parameters, %s\n", vm["out"].as<std::string>().c_str(),
              spec.name.c_str(), static_cast<double>(spec.param_count()) / 1e9,
              std::string(dtype_name(*dt)).c_str());
  return 0;
}

int cmd_generate(const std::vector<std::string>& args) {
  po::options_description d("twinfer generate --model DIR --prompt TEXT [sampling options]\n\nStreams tokens from a checkpoint folder with tokenizer.json, or a .gguf file, on the CPU reference.\n\nOptions");
  SamplingParams sp;
  d.add_options()("help,h", "show this help")(
      "model", po::value<std::string>()->required(), "safetensors folder (config.json, tokenizer.json) or .gguf (its own tokenizer)")(
      "prompt", po::value<std::string>()->required(), "prompt text")(
      "tokenizer", po::value<std::string>(), "tokenizer.json path (default: the .gguf's, or tokenizer.json in the folder)")(
      "chat", po::bool_switch()->default_value(false), "wrap the prompt as one ChatML user turn")(
      "max-tokens", po::value<int32_t>(&sp.max_tokens)->default_value(64), "tokens to generate")(
      "min-tokens", po::value<int32_t>(&sp.min_tokens)->default_value(0), "tokens before eos may end generation")(
      "temperature", po::value<double>(&sp.temperature)->default_value(0.0), "0 = greedy")(
      "top-p", po::value<double>(&sp.top_p)->default_value(1.0), "nucleus mass in (0, 1]")(
      "top-k", po::value<int32_t>(&sp.top_k)->default_value(-1), "-1 = off")(
      "min-p", po::value<double>(&sp.min_p)->default_value(0.0), "min probability relative to the top token")(
      "repetition-penalty", po::value<double>(&sp.repetition_penalty)->default_value(1.0), "> 0; 1 = off")(
      "presence-penalty", po::value<double>(&sp.presence_penalty)->default_value(0.0), "[-2, 2]")(
      "frequency-penalty", po::value<double>(&sp.frequency_penalty)->default_value(0.0), "[-2, 2]")(
      "seed", po::value<int64_t>(&sp.seed)->default_value(-1), "per-request seed (-1: none)")(
      "ignore-eos", po::bool_switch(&sp.ignore_eos), "keep going past end-of-sequence");
  po::variables_map vm;
  if (!parse_flags(args, d, d, vm)) return 0;
  const std::string model_path = vm["model"].as<std::string>();
  namespace fs = std::filesystem;
  const bool is_gguf = fs::path(model_path).extension() == ".gguf" && !fs::is_directory(model_path);
  const fs::path base = fs::is_directory(model_path) ? fs::path(model_path) : fs::path(model_path).parent_path();
  // A .gguf carries its own tokenizer (tokenizer.ggml.*); --tokenizer overrides it.
  std::optional<Tokenizer> tok_opt;
  if (vm.count("tokenizer")) {
    tok_opt = Tokenizer::from_hf_file(vm["tokenizer"].as<std::string>());
  } else if (is_gguf) {
    tok_opt = Tokenizer::from_gguf(GgufFile::open(model_path));
  } else {
    const std::string tok_path = (base / "tokenizer.json").string();
    if (!fs::exists(tok_path)) throw ConfigError(tok_path + ": no tokenizer.json (pass --tokenizer FILE)");
    tok_opt = Tokenizer::from_hf_file(tok_path);
  }
  const Tokenizer& tok = *tok_opt;
  std::string prompt = vm["prompt"].as<std::string>();
  if (vm["chat"].as<bool>()) {
    // ChatML, the template of SmolLM2 and Qwen2 instruct models; a model without the markers
    // would see them as plain text, so refuse instead.
    if (!tok.token_id("<|im_start|>") || !tok.token_id("<|im_end|>"))
      throw ConfigError("--chat: the tokenizer has no <|im_start|>/<|im_end|> tokens (ChatML only)", 2);
    prompt = "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n";
  }
  ModelWeights w = load_model_weights(model_path);
  if (auto err = validate_sampling(sp, w.spec.vocab_size)) throw ConfigError(*err, 2);

  RequestSpec r;
  r.prompt_tokens = tok.encode(prompt, true);
  r.prompt_len = static_cast<int32_t>(r.prompt_tokens.size());
  r.sampling = sp;
  const int32_t max_len = static_cast<int32_t>(std::max<int64_t>(w.spec.max_position_embeddings, r.prompt_len + sp.max_tokens + 1));
  EngineOptions eo;
  eo.blocks.block_size = 16;
  eo.blocks.num_gpu_blocks = (max_len + 15) / 16 + 1;
  eo.sched.max_model_len = max_len;
  eo.sched.max_num_batched_tokens = max_len;
  eo.eos_ids = w.spec.eos_token_ids;
  if (tok.eos_id() >= 0 && eo.eos_ids.empty()) eo.eos_ids.push_back(tok.eos_id());
  eo.vocab_size = w.spec.vocab_size;
  CpuExecutor exec(std::move(w), eo.blocks.num_gpu_blocks, 0, 16, 0);
  auto q = make_queue_policy("fcfs");
  auto v = make_victim_policy("last-arrived");
  Engine engine(eo, exec, *q, *v, nullptr);
  WallClock clock;
  engine.add_request(r, 0.0);
  ScheduleOutcome o;
  size_t shown = 0;
  while (engine.has_work()) {
    engine.schedule(clock.now(), o);
    StepResult res = engine.execute(o.plan);
    engine.commit(o, res, clock.now());
    const Sequence* s = engine.find(0);
    if (!s->error.empty()) throw ConfigError("generation failed: " + s->error);
    // Stream the text of tokens produced so far (decoding whole runs keeps multi-byte
    // characters split across tokens intact).
    std::vector<int32_t> out(s->tokens.begin() + r.prompt_len, s->tokens.end());
    const std::string text = tok.decode(out);
    if (text.size() > shown) {
      std::fwrite(text.data() + shown, 1, text.size() - shown, stdout);
      std::fflush(stdout);
      shown = text.size();
    }
  }
  std::printf("\n");
  return 0;
}

}  // namespace twinfer
