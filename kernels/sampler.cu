// GpuSampler (kernels/sampler.h): packs each call's parameters and penalty/mask token lists
// (CSR: offsets in RowDesc, ids in one int32 array) into a pinned host buffer, uploads them with
// one copy, then runs either the argmax-only kernels (all-greedy batch, no penalties or masks) or
// penalty_kernel + sample_kernel. Rows without top-k / top-p draw in id order inside
// sample_kernel (no sort). Rank-truncated rows whose draw needs more than the shared-memory head
// take a full-vocab sort (cub::DeviceRadixSort) afterwards; buffers for it are sized here, once.
#include "kernels/sampler.h"

#include <cub/cub.cuh>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/ops.h"
#include "kernels/sampler_kernels.cuh"

namespace twinfer::cuda {

using namespace sampler_detail;

namespace {
constexpr int kPenaltyCtas = 32;  // penalty grid; each CTA owns a [vocab] count scratch
constexpr size_t kInitialTokenCap = 1 << 16;
}  // namespace

struct GpuSampler::Impl {
  int64_t vocab = 0;
  int max_rows = 0;
  std::vector<int64_t> eos;
  // Blob (host pinned and device): [RowDesc x max_rows][int32 pen_rows x max_rows][int32 tokens].
  size_t token_cap = 0;
  char* h_blob = nullptr;
  char* d_blob = nullptr;
  int32_t* h_out = nullptr;  // pinned [max_rows]
  int32_t* d_out = nullptr;  // [max_rows]
  RowStats* d_stats = nullptr;
  Best* d_argmax_parts = nullptr;  // [max_rows, kArgmaxParts]
  int32_t* d_scratch = nullptr;  // [kPenaltyCtas, vocab], zero between calls
  uint64_t* d_keys_in = nullptr;
  uint64_t* d_keys_out = nullptr;
  void* d_sort_tmp = nullptr;
  size_t sort_tmp_bytes = 0;

  size_t desc_bytes() const { return sizeof(RowDesc) * static_cast<size_t>(max_rows); }
  size_t rows_offset() const { return desc_bytes(); }
  size_t tokens_offset() const { return desc_bytes() + sizeof(int32_t) * static_cast<size_t>(max_rows); }

  void alloc_blob(size_t cap) {
    if (h_blob) TWINFER_CUDA_CHECK(cudaFreeHost(h_blob));
    if (d_blob) TWINFER_CUDA_CHECK(cudaFree(d_blob));
    h_blob = nullptr;
    d_blob = nullptr;
    token_cap = cap;
    const size_t bytes = tokens_offset() + sizeof(int32_t) * cap;
    TWINFER_CUDA_CHECK(cudaMallocHost(&h_blob, bytes));
    TWINFER_CUDA_CHECK(cudaMalloc(&d_blob, bytes));
  }

  void release() {
    cudaFreeHost(h_blob);
    cudaFree(d_blob);
    cudaFreeHost(h_out);
    cudaFree(d_out);
    cudaFree(d_stats);
    cudaFree(d_argmax_parts);
    cudaFree(d_scratch);
    cudaFree(d_keys_in);
    cudaFree(d_keys_out);
    cudaFree(d_sort_tmp);
  }
};

GpuSampler::GpuSampler(int64_t vocab, int max_rows, std::vector<int64_t> eos_ids) : impl_(new Impl) {
  // Fixed-point sums (core/sampling.cpp, q * 2^44 per token) fit 64 bits below 2^20 tokens.
  if (vocab < 1 || vocab >= (int64_t{1} << 20)) {
    delete impl_;
    throw std::invalid_argument("GpuSampler: vocab must be in [1, 1048575], got " + std::to_string(vocab));
  }
  if (max_rows < 1) {
    delete impl_;
    throw std::invalid_argument("GpuSampler: max_rows must be at least 1, got " + std::to_string(max_rows));
  }
  Impl& m = *impl_;
  m.vocab = vocab;
  m.max_rows = max_rows;
  m.eos = std::move(eos_ids);
  try {
    m.alloc_blob(kInitialTokenCap);
    TWINFER_CUDA_CHECK(cudaMallocHost(&m.h_out, sizeof(int32_t) * max_rows));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_out, sizeof(int32_t) * max_rows));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_stats, sizeof(RowStats) * max_rows));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_argmax_parts, sizeof(Best) * kArgmaxParts * max_rows));
    const size_t scratch = sizeof(int32_t) * kPenaltyCtas * static_cast<size_t>(vocab);
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_scratch, scratch));
    TWINFER_CUDA_CHECK(cudaMemset(m.d_scratch, 0, scratch));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_keys_in, sizeof(uint64_t) * vocab));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_keys_out, sizeof(uint64_t) * vocab));
    TWINFER_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, m.sort_tmp_bytes, m.d_keys_in,
                                                      m.d_keys_out, static_cast<int>(vocab)));
    TWINFER_CUDA_CHECK(cudaMalloc(&m.d_sort_tmp, m.sort_tmp_bytes));
    TWINFER_CUDA_CHECK(cudaDeviceSynchronize());  // the scratch memset is done before any use
  } catch (...) {
    m.release();
    delete impl_;
    throw;
  }
}

GpuSampler::~GpuSampler() {
  impl_->release();
  delete impl_;
}

void GpuSampler::sample(float* d_logits, std::span<const SampleRow> rows, std::span<int32_t> out,
                        cudaStream_t s) {
  Impl& m = *impl_;
  const int n = static_cast<int>(rows.size());
  if (n == 0) return;
  if (n > m.max_rows)
    throw std::invalid_argument("GpuSampler::sample: " + std::to_string(n) + " rows, max_rows is " +
                                std::to_string(m.max_rows));
  if (out.size() < rows.size())
    throw std::invalid_argument("GpuSampler::sample: out holds " + std::to_string(out.size()) +
                                " ids for " + std::to_string(n) + " rows");
  const int64_t v = m.vocab;
  auto valid = [v](int64_t t) { return t >= 0 && t < v; };

  // Size the token array: penalty sequences plus min_tokens masks.
  size_t need = 0;
  for (const SampleRow& r : rows) {
    const SamplingParams& p = *r.params;
    if (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
      need += r.prompt.size() + r.output.size();
    if (static_cast<int64_t>(r.output.size()) < p.min_tokens)
      need += p.stop_token_ids.size() + (p.ignore_eos ? 0 : m.eos.size());
  }
  if (need > m.token_cap) m.alloc_blob(std::max(need, 2 * m.token_cap));  // idle: last call synced

  auto* desc = reinterpret_cast<RowDesc*>(m.h_blob);
  auto* pen_rows = reinterpret_cast<int32_t*>(m.h_blob + m.rows_offset());
  auto* toks = reinterpret_cast<int32_t*>(m.h_blob + m.tokens_offset());
  int32_t n_tok = 0, n_pen = 0;
  bool fast = true;
  for (int i = 0; i < n; ++i) {
    const SamplingParams& p = *rows[i].params;
    RowDesc d;
    d.top_p = p.top_p;
    d.key = rows[i].key;
    d.temperature = static_cast<float>(p.temperature);
    d.rep = static_cast<float>(p.repetition_penalty);
    d.freq = static_cast<float>(p.frequency_penalty);
    d.pres = static_cast<float>(p.presence_penalty);
    d.min_p = static_cast<float>(p.min_p);
    d.top_k = p.top_k;
    d.greedy = p.temperature < 1e-5 || p.top_k == 1;
    d.penalize = p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0;
    d.tok_off = n_tok;
    if (d.penalize) {
      for (int32_t t : rows[i].prompt) toks[n_tok++] = t;
      for (int32_t t : rows[i].output) toks[n_tok++] = t;
      d.n_prompt = static_cast<int32_t>(rows[i].prompt.size());
      d.n_output = static_cast<int32_t>(rows[i].output.size());
    }
    d.mask_off = n_tok;
    if (static_cast<int64_t>(rows[i].output.size()) < p.min_tokens) {
      if (!p.ignore_eos)
        for (int64_t e : m.eos)
          if (valid(e)) toks[n_tok++] = static_cast<int32_t>(e);
      for (int32_t t : p.stop_token_ids)
        if (valid(t)) toks[n_tok++] = t;
    }
    d.n_mask = n_tok - d.mask_off;
    if (d.penalize || d.n_mask > 0) pen_rows[n_pen++] = i;
    fast = fast && d.greedy && !d.penalize && d.n_mask == 0;
    desc[i] = d;
  }
  const auto* d_desc = reinterpret_cast<const RowDesc*>(m.d_blob);

  if (fast) {  // plain argmax reads no row descriptors: no upload
    argmax_part_kernel<<<dim3(kArgmaxParts, n), kArgmaxThreads, 0, s>>>(d_logits, v, m.d_argmax_parts);
    check_launch("argmax_part_kernel");
    argmax_final_kernel<<<n, 32, 0, s>>>(m.d_argmax_parts, m.d_out);
    check_launch("argmax_final_kernel");
  } else {
    const size_t bytes = m.tokens_offset() + sizeof(int32_t) * static_cast<size_t>(n_tok);
    TWINFER_CUDA_CHECK(cudaMemcpyAsync(m.d_blob, m.h_blob, bytes, cudaMemcpyHostToDevice, s));
    if (n_pen > 0) {
      penalty_kernel<<<std::min(n_pen, kPenaltyCtas), kPenaltyThreads, 0, s>>>(
          d_logits, v, d_desc, reinterpret_cast<const int32_t*>(m.d_blob + m.rows_offset()), n_pen,
          reinterpret_cast<const int32_t*>(m.d_blob + m.tokens_offset()), m.d_scratch);
      check_launch("penalty_kernel");
    }
    sample_kernel<<<n, kSampleThreads, 0, s>>>(d_logits, v, d_desc, m.d_stats, m.d_out);
    check_launch("sample_kernel");
  }
  TWINFER_CUDA_CHECK(cudaMemcpyAsync(m.h_out, m.d_out, sizeof(int32_t) * n, cudaMemcpyDeviceToHost, s));
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(s));

  // Rows whose draw reaches past the shared-memory head: sort the whole row.
  for (int i = 0; i < n && !fast; ++i) {
    if (m.h_out[i] >= 0) continue;
    const float* row = d_logits + static_cast<int64_t>(i) * v;
    keys_kernel<<<static_cast<unsigned>((v + 255) / 256), 256, 0, s>>>(row, v, d_desc + i, m.d_stats + i,
                                                                        m.d_keys_in);
    check_launch("keys_kernel");
    size_t tmp = m.sort_tmp_bytes;
    TWINFER_CUDA_CHECK(cub::DeviceRadixSort::SortKeys(m.d_sort_tmp, tmp, m.d_keys_in, m.d_keys_out,
                                                      static_cast<int>(v), 0, 64, s));
    walk_kernel<<<1, kSampleThreads, 0, s>>>(m.d_keys_out, v, d_desc + i, m.d_stats + i, m.d_out + i);
    check_launch("walk_kernel");
    TWINFER_CUDA_CHECK(cudaMemcpyAsync(m.h_out + i, m.d_out + i, sizeof(int32_t), cudaMemcpyDeviceToHost, s));
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  std::copy(m.h_out, m.h_out + n, out.begin());
}

}  // namespace twinfer::cuda
