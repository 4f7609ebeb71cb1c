// Sampling on the GPU with the CPU sampler's parameters and results (core/sampling.h): the same
// penalties, min_tokens masking, temperature, top-k, top-p, min-p and the same counter-based
// draw, so a request gives the same tokens on `--backend cpu` and `--backend cuda`.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "core/request.h"

namespace twinfer::cuda {

struct SampleRow {
  const SamplingParams* params = nullptr;  // validated by the caller (validate_sampling)
  std::span<const int32_t> prompt;          // repetition penalty looks at prompt + output
  std::span<const int32_t> output;
  uint64_t key = 0;                         // sampling_key(...) of this draw
};

class GpuSampler {
 public:
  // max_rows: most rows one call samples; buffers are allocated here, never per call.
  GpuSampler(int64_t vocab, int max_rows, std::vector<int64_t> eos_ids);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  // d_logits: device fp32 [rows.size(), vocab], one row per SampleRow, processed in place.
  // Writes one token id per row into `out` (host) and synchronizes `s`. All-greedy batches
  // without penalties take an argmax-only path.
  void sample(float* d_logits, std::span<const SampleRow> rows, std::span<int32_t> out,
              cudaStream_t s);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace twinfer::cuda
