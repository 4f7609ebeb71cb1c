// JSON is on the path of every run's config and summary; keep parsing cheap.
#include <benchmark/benchmark.h>

#include "core/json.h"

static void BM_JsonParseDump(benchmark::State& state) {
  twinfer::Json doc = twinfer::Json::object();
  for (int i = 0; i < 200; ++i) {
    twinfer::Json row = twinfer::Json::object();
    row["id"] = i;
    row["ttft_ms"] = 12.5 + i;
    row["name"] = "request-" + std::to_string(i);
    doc["rows"].push_back(row);
  }
  std::string text = doc.dump();
  for (auto _ : state) {
    auto j = twinfer::Json::parse(text);
    benchmark::DoNotOptimize(j.dump());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_JsonParseDump);
