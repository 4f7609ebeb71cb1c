// Writing a long run's outputs must stay well under 0.5 s on one core: a synthetic record of
// 20k requests, 300k steps and 2M KV event block ids, written to a temp dir.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "core/run_record.h"

namespace {

using namespace twinfer;

const RunRecord& synthetic_record() {
  static const RunRecord rec = [] {
    RunRecord r;
    r.backend = "sim";
    constexpr int kRequests = 20000, kSteps = 300000;
    constexpr double kStep = 0.012;  // seconds per step
    r.requests.reserve(kRequests);
    for (int i = 0; i < kRequests; ++i) {
      RequestRecord q;
      q.id = i;
      q.prompt_len = 128 + (i * 37) % 1900;
      q.output_len = 16 + (i * 53) % 480;
      q.target_len = q.output_len;
      double a = i * 0.18;
      q.times = {a, a + 0.05 + (i % 7) * 0.01, a + 0.3, a + 0.3 + q.output_len * kStep,
                 a + 0.3 + q.output_len * kStep};
      q.status = i % 500 == 7 ? SeqStatus::failed : SeqStatus::finished;
      if (q.status == SeqStatus::failed) q.error = "prompt exceeds max_model_len";
      q.num_preemptions = i % 97 == 0;
      q.prefix_hit_tokens = (i % 4) * 16;
      r.requests.push_back(std::move(q));
    }
    r.steps.reserve(kSteps);
    for (int i = 0; i < kSteps; ++i) {
      StepRecord s;
      s.step = i;
      s.start_s = i * kStep;
      s.duration_s = kStep * (0.9 + 0.1 * (i % 3));
      s.num_prefill_tokens = i % 9 == 0 ? 2048 : 0;
      s.num_decode_tokens = 40 + i % 24;
      s.num_prefill_seqs = i % 9 == 0 ? 2 : 0;
      s.num_decode_seqs = s.num_decode_tokens;
      s.num_running = s.num_decode_seqs + s.num_prefill_seqs;
      s.num_waiting = (i / 50) % 30;
      s.kv_blocks_used = 3000 + (i * 7) % 4000;
      s.kv_blocks_cached = (i * 3) % 500;
      s.preempted_begin = s.preempted_end = static_cast<uint32_t>(r.preempted_ids.size());
      if (i % 1000 == 0) {
        r.preempted_ids.push_back(i % kRequests);
        r.preempted_ids.push_back((i + 1) % kRequests);
        s.preempted_end += 2;
      }
      r.steps.push_back(s);
    }
    // 400k events of 5 block ids each = 2M ids.
    r.kv.events.reserve(400000);
    r.kv.ids.reserve(2000000);
    BlockId blocks[5];
    for (int i = 0; i < 400000; ++i) {
      r.kv.time = (i * 3 / 4) * kStep;
      r.kv.step = i * 3 / 4;
      for (int k = 0; k < 5; ++k) blocks[k] = (i * 5 + k) % 7000;
      auto type = static_cast<KvEventType>(i % 3 == 0 ? 0 : (i % 3 == 1 ? 2 : 1));
      r.kv.add(type, i % kRequests, blocks, 5);
    }
    r.itl_s.assign(2000000, static_cast<float>(kStep));
    r.duration_s = kSteps * kStep;
    r.kv_blocks_total = 8000;
    r.kv_blocks_peak = 7000;
    return r;
  }();
  return rec;
}

void BM_WriteRunOutputs(benchmark::State& state) {
  namespace fs = std::filesystem;
  const RunRecord& r = synthetic_record();
  Summary s = summarize(r);
  Json config = Json::object();
  config["engine"]["block_size"] = 16;
  const fs::path base = fs::temp_directory_path() /
                        ("twinfer_bench_outputs_" + std::to_string(::getpid()));
  // A fresh directory per iteration, as in a real run: overwriting the previous iteration's
  // files would time the filesystem releasing (and discarding) ~150 MB of old blocks instead.
  int64_t iter = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(base);
    state.ResumeTiming();
    write_run_outputs((base / std::to_string(iter++)).string(), config, r, s);
  }
  uintmax_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(base))
    if (e.is_regular_file()) bytes += e.file_size();
  state.counters["MB_written"] = static_cast<double>(bytes) / 1e6;
  fs::remove_all(base);
}
BENCHMARK(BM_WriteRunOutputs)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_Summarize(benchmark::State& state) {
  const RunRecord& r = synthetic_record();
  for (auto _ : state) benchmark::DoNotOptimize(summarize(r));
}
BENCHMARK(BM_Summarize)->Unit(benchmark::kMillisecond);

}  // namespace
