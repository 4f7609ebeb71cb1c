// CudaExecutor: step preparation on the host, the forward pass as a sequence of launches, and
// CUDA-graph capture/replay of decode steps.
#include "kernels/cuda_executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/sampling.h"

namespace twinfer::cuda {

namespace {

size_t align256(size_t n) { return (n + 255) & ~size_t{255}; }

}  // namespace

// One step's index arrays, at fixed device addresses (graphs replay against them) with a
// pinned host mirror of the same layout; each region is uploaded only up to its used length.
struct CudaExecutor::Meta {
  void* dev = nullptr;
  void* host = nullptr;
  size_t bytes = 0;
  int32_t* tokens = nullptr;     // [max_tokens]
  int32_t* positions = nullptr;  // [max_tokens]
  int64_t* slots = nullptr;      // [max_tokens]
  int32_t* sample_idx = nullptr; // [max_seqs] rows whose hidden state feeds the lm_head
  int32_t* dec_ctx = nullptr;    // [max_seqs] context length of each decode row
  int32_t* pf_qstart = nullptr;  // [max_seqs + 1] first prefill row (relative) of each sequence
  int32_t* pf_ctx = nullptr;     // [max_seqs] context after the chunk
  int32_t* dec_bt = nullptr;     // [max_seqs, max_blocks_per_seq]
  int32_t* pf_bt = nullptr;      // [max_seqs, max_blocks_per_seq]
  // The host twin of a device pointer.
  template <class T>
  T* h(T* d) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(host) +
                                (reinterpret_cast<uint8_t*>(d) - static_cast<uint8_t*>(dev)));
  }
  template <class T>
  void upload(T* d, size_t count, cudaStream_t s) const {
    if (count == 0) return;
    TWINFER_CUDA_CHECK(cudaMemcpyAsync(d, h(d), count * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  // Everything from the start of the layout up to (not including) `end`, in one copy.
  template <class T>
  void upload_through(T* end, cudaStream_t s) const {
    const size_t n = static_cast<size_t>(reinterpret_cast<uint8_t*>(end) - static_cast<uint8_t*>(dev));
    if (n > 0) TWINFER_CUDA_CHECK(cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice, s));
  }
};

struct CudaExecutor::Graph {
  int32_t batch = 0;
  cudaGraphExec_t exec = nullptr;
};

void* CudaExecutor::alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw ConfigError("cuda: out of device memory allocating " + std::to_string(bytes >> 20) +
                      " MiB (" + std::to_string(free_b >> 20) + " MiB free of " +
                      std::to_string(total_b >> 20) +
                      " MiB); lower --max-num-batched-tokens, --max-num-seqs or --max-model-len");
  }
  allocations_.push_back(p);
  return p;
}

CudaExecutor::CudaExecutor(DeviceModel&& model, const CudaExecutorOptions& opt)
    : m_(std::move(model)), opt_(opt) {
  const ModelSpec& s = m_.spec;
  if (opt_.block_size <= 0 || opt_.max_num_seqs <= 0 || opt_.max_model_len <= 0)
    throw ConfigError("cuda: block_size, max_num_seqs and max_model_len must be positive");
  TWINFER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<Gemm>();
  gemm_->set_stream(stream_);
  max_tokens_ = std::max(opt_.max_num_batched_tokens, opt_.max_num_seqs);
  max_blocks_per_seq_ = (opt_.max_model_len + opt_.block_size - 1) / opt_.block_size;
  const size_t T = static_cast<size_t>(max_tokens_), H = s.hidden_size, QD = s.q_dim(),
               QKV = s.q_dim() + 2 * s.kv_dim(), I = s.intermediate_size, V = s.vocab_size,
               S = static_cast<size_t>(opt_.max_num_seqs);
  x_ = static_cast<bf16*>(alloc(T * H * 2));
  h_ = static_cast<bf16*>(alloc(T * H * 2));
  qkv_ = static_cast<bf16*>(alloc(T * QKV * 2));
  attn_ = static_cast<bf16*>(alloc(T * QD * 2));
  o_ = static_cast<bf16*>(alloc(T * H * 2));
  gu_ = static_cast<bf16*>(alloc(T * 2 * I * 2));
  act_ = static_cast<bf16*>(alloc(T * I * 2));
  fin_ = static_cast<bf16*>(alloc(S * H * 2));
  logits_ = static_cast<float*>(alloc(S * V * 4));
  if (opt_.keep_logits) kept_logits_ = static_cast<float*>(alloc(S * V * 4));
  const size_t attn_ws_bytes = decode_attention_workspace_bytes(
      opt_.max_num_seqs, static_cast<int>(s.num_heads), static_cast<int>(s.head_dim), opt_.max_model_len);
  attn_ws_ = alloc(attn_ws_bytes);
  // The split-K arrival counters at its start must begin at zero (the kernel keeps them so).
  TWINFER_CUDA_CHECK(cudaMemset(attn_ws_, 0, attn_ws_bytes));

  // The fused small-step GEMVs need 16-byte aligned activations, weights and norm weights.
  auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
  fused_ok_ = H % 8 == 0 && QD % 8 == 0 && I % 8 == 0 && a16(x_) && a16(attn_) && a16(act_);
  for (const DeviceLayer& L : m_.layers)
    fused_ok_ = fused_ok_ && a16(L.wqkv) && a16(L.wo) && a16(L.w_gate_up) && a16(L.w_down) &&
                a16(L.attn_norm) && a16(L.ffn_norm);
  ablate_ = parse_ablate(std::getenv("TWINFER_ABLATE"));
  l2_prefetch_ = parse_l2_prefetch(std::getenv("TWINFER_L2_PREFETCH"));
  if (const char* t = std::getenv("TWINFER_STEP_TIMING"); t && std::atoi(t) != 0)
    for (cudaEvent_t& e : step_ev_) TWINFER_CUDA_CHECK(cudaEventCreate(&e));
  // Measurement knob (docs/gpu.md): where the small-T GEMV hands over to cuBLAS.
  if (const char* r = std::getenv("TWINFER_GEMV_MAX_ROWS")) gemm_->gemv_max_rows = std::atoi(r);

  meta_ = std::make_unique<Meta>();
  Meta& mt = *meta_;
  const size_t B = static_cast<size_t>(max_blocks_per_seq_);
  size_t off = 0;
  auto region = [&](size_t bytes) {
    const size_t o = off;
    off += align256(bytes);
    return o;
  };
  const size_t o_tok = region(T * 4), o_pos = region(T * 4), o_slot = region(T * 8),
               o_si = region(S * 4), o_dc = region(S * 4), o_qs = region((S + 1) * 4),
               o_pc = region(S * 4), o_dbt = region(S * B * 4), o_pbt = region(S * B * 4);
  mt.bytes = off;
  mt.dev = alloc(off);
  TWINFER_CUDA_CHECK(cudaMallocHost(&mt.host, off));
  auto* d = static_cast<uint8_t*>(mt.dev);
  mt.tokens = reinterpret_cast<int32_t*>(d + o_tok);
  mt.positions = reinterpret_cast<int32_t*>(d + o_pos);
  mt.slots = reinterpret_cast<int64_t*>(d + o_slot);
  mt.sample_idx = reinterpret_cast<int32_t*>(d + o_si);
  mt.dec_ctx = reinterpret_cast<int32_t*>(d + o_dc);
  mt.pf_qstart = reinterpret_cast<int32_t*>(d + o_qs);
  mt.pf_ctx = reinterpret_cast<int32_t*>(d + o_pc);
  mt.dec_bt = reinterpret_cast<int32_t*>(d + o_dbt);
  mt.pf_bt = reinterpret_cast<int32_t*>(d + o_pbt);

  // Graph steps: decode rows only (at most max_seqs), no prefill arrays; slots first for their
  // 8-byte alignment, the block tables last so a step copies only the rows it uses.
  gmeta_ = std::make_unique<Meta>();
  Meta& g = *gmeta_;
  g.bytes = S * (8 + 4 * 4) + S * B * 4;
  g.dev = alloc(g.bytes);
  TWINFER_CUDA_CHECK(cudaMallocHost(&g.host, g.bytes));
  auto* gd = static_cast<uint8_t*>(g.dev);
  g.slots = reinterpret_cast<int64_t*>(gd);
  g.tokens = reinterpret_cast<int32_t*>(gd + S * 8);
  g.positions = g.tokens + S;
  g.dec_ctx = g.positions + S;
  g.sample_idx = g.dec_ctx + S;
  g.dec_bt = g.sample_idx + S;

  sampler_ = std::make_unique<GpuSampler>(s.vocab_size, opt_.max_num_seqs, s.eos_token_ids);
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaExecutor::~CudaExecutor() {
  for (Graph& g : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
  for (cudaEvent_t e : step_ev_)
    if (e) cudaEventDestroy(e);
  if (meta_ && meta_->host) cudaFreeHost(meta_->host);
  if (gmeta_ && gmeta_->host) cudaFreeHost(gmeta_->host);
  if (kv_) cudaFree(kv_);
  if (kv_host_) cudaFreeHost(kv_host_);
  for (void* p : allocations_) cudaFree(p);
  sampler_.reset();
  gemm_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaExecutor::set_layer_kv(void* base, int32_t num_blocks) {
  const ModelSpec& s = m_.spec;
  const size_t pool = static_cast<size_t>(num_blocks) * block_bytes_;
  layer_kv_.assign(static_cast<size_t>(s.num_layers), PagedKV{});
  for (size_t l = 0; l < layer_kv_.size(); ++l) {
    PagedKV& kv = layer_kv_[l];
    kv.k = static_cast<uint8_t*>(base) + (2 * l) * pool;
    kv.v = static_cast<uint8_t*>(base) + (2 * l + 1) * pool;
    kv.num_blocks = num_blocks;
    kv.block_size = opt_.block_size;
    kv.n_kv_heads = static_cast<int32_t>(s.num_kv_heads);
    kv.head_dim = static_cast<int32_t>(s.head_dim);
    kv.dtype = opt_.kv_dtype;
    kv.k_scale = kv_scales_ + 2 * l;
    kv.v_scale = kv_scales_ + 2 * l + 1;
  }
}

void CudaExecutor::forward(const Meta& mt, int T, int D, int S, int max_q_len, int max_context, int R) {
  const ModelSpec& s = m_.spec;
  const int H = static_cast<int>(s.hidden_size), QD = static_cast<int>(s.q_dim()),
            QKV = static_cast<int>(s.q_dim() + 2 * s.kv_dim()), I = static_cast<int>(s.intermediate_size),
            NH = static_cast<int>(s.num_heads), NKV = static_cast<int>(s.num_kv_heads),
            HD = static_cast<int>(s.head_dim);
  const float eps = static_cast<float>(s.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  // Small steps (decode) take the fused path: the norms run inside the GEMVs that consume them
  // and the residual adds inside the GEMVs that produce them, so x_ always holds the residual.
  const bool fused = opt_.fuse_small_steps && T <= gemm_->gemv_max_rows && fused_ok_;
  auto on = [&](Op op) { return !(ablate_ & (1u << static_cast<int>(op))); };
  mark(Op::embed);
  if (on(Op::embed)) embed(m_.embed, mt.tokens, T, H, x_, stream_);
  for (size_t l = 0; l < m_.layers.size(); ++l) {
    const DeviceLayer& L = m_.layers[l];
    // Unfused: the residual stream lives in x_; o_ carries the previous layer's MLP output.
    if (fused) {
      mark(Op::qkv);
      if (on(Op::qkv)) gemv_norm_bf16(x_, L.attn_norm, eps, T, H, L.wqkv, QKV, qkv_, stream_);
    } else {
      mark(Op::norm);
      if (on(Op::norm)) {
        if (l == 0) rms_norm(x_, L.attn_norm, T, H, eps, h_, stream_);
        else add_rms_norm(x_, o_, L.attn_norm, T, H, eps, h_, stream_);
      }
      mark(Op::qkv);
      if (on(Op::qkv)) gemm_->run(h_, T, H, L.wqkv, QKV, qkv_);
    }
    mark(Op::rope_kv);
    if (on(Op::rope_kv))
      rope_kv_write(qkv_, L.bqkv, T, mt.positions, m_.inv_freq, NH, NKV, HD, mt.slots,
                    layer_kv_[l], stream_);
    if (fused && l2_prefetch_ & (kPrefetchO | kPrefetchOHalf)) {
      // During decode attention's chain of round trips: o_proj's weights [H, QD], all of
      // them, or the second half of each row (the GEMV's first load batch covers the first
      // half at one row per warp).
      const int64_t pitch = int64_t(QD) * 2;
      if (l2_prefetch_ & kPrefetchO) l2_prefetch_rows(L.wo, 1, pitch * H, 0, pitch * H, stream_);
      else l2_prefetch_rows(L.wo, H, pitch, pitch / 2, pitch / 2, stream_);
    }
    mark(Op::attn_decode);
    if (D > 0 && on(Op::attn_decode))
      paged_decode_attention(qkv_, QKV, D, mt.dec_ctx, mt.dec_bt, max_blocks_per_seq_, layer_kv_[l],
                             NH, scale, max_context, attn_ws_, attn_, stream_);
    mark(Op::attn_prefill);
    if (S > 0 && on(Op::attn_prefill))
      paged_prefill_attention(qkv_ + static_cast<size_t>(D) * QKV, QKV, S, mt.pf_qstart, mt.pf_ctx,
                              mt.pf_bt, max_blocks_per_seq_, layer_kv_[l], NH, scale, max_q_len,
                              attn_ + static_cast<size_t>(D) * QD, stream_);
    mark(Op::o_proj);
    if (fused) {
      if (on(Op::o_proj)) gemv_add_bf16(attn_, T, QD, L.wo, H, x_, stream_);
      mark(Op::gate_up);
      if (on(Op::gate_up))
        gemv_norm_gate_up_silu_bf16(x_, L.ffn_norm, eps, T, H, L.w_gate_up, I, act_, stream_);
      mark(Op::down);
      if (on(Op::down)) gemv_add_bf16(act_, T, I, L.w_down, H, x_, stream_);
      continue;
    }
    if (on(Op::o_proj)) gemm_->run(attn_, T, QD, L.wo, H, o_);
    mark(Op::norm);
    if (on(Op::norm)) add_rms_norm(x_, o_, L.ffn_norm, T, H, eps, h_, stream_);
    mark(Op::gate_up);
    if (T <= gemm_->gemv_max_rows && gemv_gate_up_silu_applicable(h_, H, L.w_gate_up)) {
      // Small T: SiLU * up in the GEMV's epilogue (same bits as gate_up then silu_mul).
      if (on(Op::gate_up)) gemv_gate_up_silu_bf16(h_, T, H, L.w_gate_up, I, act_, stream_);
    } else {
      if (on(Op::gate_up)) gemm_->run(h_, T, H, L.w_gate_up, 2 * I, gu_);
      mark(Op::act);
      if (on(Op::act)) silu_mul(gu_, T, I, act_, stream_);
    }
    mark(Op::down);
    if (on(Op::down)) gemm_->run(act_, T, I, L.w_down, H, o_);
  }
  mark(Op::norm);
  if (on(Op::norm)) {
    if (fused) rms_norm(x_, m_.final_norm, T, H, eps, h_, stream_);
    else add_rms_norm(x_, o_, m_.final_norm, T, H, eps, h_, stream_);
  }
  mark(Op::lm_head);
  if (R > 0 && on(Op::lm_head)) {
    embed(h_, mt.sample_idx, R, H, fin_, stream_);  // gathers the rows that sample
    gemm_->run_f32(fin_, R, H, m_.lm_head, static_cast<int>(s.vocab_size), logits_);
  }
  // The host's gap between steps (sampling, the next step's upload) leaves HBM idle: the next
  // step's first weights can arrive in L2 meanwhile.
  if (fused && l2_prefetch_ & kPrefetchNextQkv) {
    const DeviceLayer& L0 = m_.layers.front();
    const int64_t bytes = int64_t(QKV) * H * 2;
    l2_prefetch_rows(L0.wqkv, 1, bytes, 0, bytes, stream_);
  }
}

size_t CudaExecutor::profile() {
  // The largest step: max_tokens_ prompt tokens in sequences of at most max_model_len, against
  // a scratch pool just big enough, so every lazy allocation (cuBLAS, module loads) happens now.
  const int32_t bs = opt_.block_size;
  const int32_t T = max_tokens_;
  const int32_t per_seq = std::min(T, opt_.max_model_len);
  const int32_t S = std::min((T + per_seq - 1) / per_seq, opt_.max_num_seqs);
  const int32_t blocks = S * ((per_seq + bs - 1) / bs);
  const ModelSpec& s = m_.spec;
  block_bytes_ = static_cast<size_t>(bs) * s.kv_dim() * (opt_.kv_dtype == KvDtype::fp8_e4m3 ? 1 : 2);
  if (!kv_scales_) {
    kv_scales_ = static_cast<float*>(alloc(2 * s.num_layers * sizeof(float)));
    std::vector<float> ones(static_cast<size_t>(2 * s.num_layers), 1.0f);
    TWINFER_CUDA_CHECK(cudaMemcpy(kv_scales_, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  }
  void* scratch = nullptr;
  TWINFER_CUDA_CHECK(cudaMalloc(&scratch, 2 * s.num_layers * static_cast<size_t>(blocks) * block_bytes_));
  set_layer_kv(scratch, blocks);
  Meta& mt = *meta_;
  int32_t row = 0, blk = 0;
  mt.h(mt.pf_qstart)[0] = 0;
  for (int32_t q = 0; q < S; ++q) {
    const int32_t n = std::min(per_seq, T - row);
    for (int32_t j = 0; j < n; ++j) {
      mt.h(mt.tokens)[row + j] = static_cast<int32_t>((row + j) % s.vocab_size);
      mt.h(mt.positions)[row + j] = j;
      mt.h(mt.slots)[row + j] = static_cast<int64_t>(blk) * bs + j;
    }
    const int32_t nb = (n + bs - 1) / bs;
    for (int32_t b = 0; b < nb; ++b) mt.h(mt.pf_bt)[q * max_blocks_per_seq_ + b] = blk + b;
    blk += nb;
    row += n;
    mt.h(mt.pf_qstart)[q + 1] = row;
    mt.h(mt.pf_ctx)[q] = n;
  }
  mt.h(mt.sample_idx)[0] = row - 1;
  mt.upload(mt.tokens, row, stream_);
  mt.upload(mt.positions, row, stream_);
  mt.upload(mt.slots, row, stream_);
  mt.upload(mt.pf_qstart, S + 1, stream_);
  mt.upload(mt.pf_ctx, S, stream_);
  mt.upload(mt.pf_bt, static_cast<size_t>(S) * max_blocks_per_seq_, stream_);
  mt.upload(mt.sample_idx, 1, stream_);
  forward(mt, row, 0, S, per_seq, per_seq, 1);
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  marks_.clear();
  size_t free_b = 0, total_b = 0;
  TWINFER_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t scratch_bytes = 2 * s.num_layers * static_cast<size_t>(blocks) * block_bytes_;
  TWINFER_CUDA_CHECK(cudaFree(scratch));
  layer_kv_.clear();
  return total_b - free_b - scratch_bytes;
}

void CudaExecutor::allocate_kv(int32_t num_gpu_blocks, int32_t num_cpu_blocks) {
  const ModelSpec& s = m_.spec;
  if (!kv_scales_) profile();
  num_gpu_blocks_ = num_gpu_blocks;
  num_cpu_blocks_ = num_cpu_blocks;
  kv_bytes_ = 2 * s.num_layers * static_cast<size_t>(num_gpu_blocks) * block_bytes_;
  const cudaError_t e = cudaMalloc(&kv_, kv_bytes_);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw ConfigError("cuda: cannot allocate the KV pool of " + std::to_string(num_gpu_blocks) +
                      " blocks (" + std::to_string(kv_bytes_ >> 20) +
                      " MiB); lower --gpu-memory-utilization or --num-gpu-blocks-override");
  }
  if (num_cpu_blocks > 0)
    TWINFER_CUDA_CHECK(cudaMallocHost(&kv_host_, 2 * s.num_layers * static_cast<size_t>(num_cpu_blocks) * block_bytes_));
  set_layer_kv(kv_, num_gpu_blocks);
  graph_sizes_ = opt_.cudagraph_sizes.empty() ? default_cudagraph_sizes(opt_.max_num_seqs) : opt_.cudagraph_sizes;
  std::sort(graph_sizes_.begin(), graph_sizes_.end());
  graph_sizes_.erase(std::remove_if(graph_sizes_.begin(), graph_sizes_.end(),
                                    [&](int32_t b) { return b <= 0 || b > opt_.max_num_seqs; }),
                     graph_sizes_.end());
  warm_gemms();
  if (opt_.enforce_eager) graph_sizes_.clear();
  else capture_graphs();
}

void CudaExecutor::warm_gemms() {
  // CUDA loads kernels lazily, and cuBLAS picks a different kernel across token counts, so the
  // first step at a new count paid ~1-9 ms of module loading (measured by fitting the step
  // times of the hardware fidelity runs: the first ~10 new counts of a process cost ~9 ms more,
  // later ones ~1 ms, a count beside one already run little). Running every projection of
  // layer 0 over a grid of counts up to the step budget moves that cost to start-up; the
  // outputs are scratch. Counts <= gemv_max_rows run the GEMV, which graph capture and the
  // profiling pass already loaded.
  const auto t0 = std::chrono::steady_clock::now();
  const ModelSpec& s = m_.spec;
  const int H = static_cast<int>(s.hidden_size), QD = static_cast<int>(s.q_dim()),
            QKV = static_cast<int>(s.q_dim() + 2 * s.kv_dim()), I = static_cast<int>(s.intermediate_size);
  const DeviceLayer& L = m_.layers.front();
  const std::vector<int32_t> counts = gemm_warm_counts(gemm_->gemv_max_rows + 1, max_tokens_);
  for (int t : counts) {
    gemm_->run(h_, t, H, L.wqkv, QKV, qkv_);
    gemm_->run(attn_, t, QD, L.wo, H, o_);
    gemm_->run(h_, t, H, L.w_gate_up, 2 * I, gu_);
    gemm_->run(act_, t, I, L.w_down, H, o_);
    if (t <= opt_.max_num_seqs)
      gemm_->run_f32(fin_, t, H, m_.lm_head, static_cast<int>(s.vocab_size), logits_);
  }
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  warmed_shapes_ = static_cast<int>(counts.size());
  warm_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void CudaExecutor::capture_graphs() {
  // Padding rows: token 0 at position 0, no KV write (slot -1), context 0 (attention writes
  // zeros), so a captured batch of B serves any decode step of up to B sequences.
  const auto t0 = std::chrono::steady_clock::now();
  Meta& mt = *gmeta_;
  const int32_t Bmax = graph_sizes_.empty() ? 0 : graph_sizes_.back();
  for (int32_t i = 0; i < Bmax; ++i) {
    mt.h(mt.tokens)[i] = 0;
    mt.h(mt.positions)[i] = 0;
    mt.h(mt.slots)[i] = -1;
    mt.h(mt.dec_ctx)[i] = 0;
    mt.h(mt.sample_idx)[i] = i;  // never rewritten: graph row r samples row r
  }
  mt.upload_through(mt.dec_bt, stream_);
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  // Largest first, as vLLM does, so smaller graphs reuse the memory pool of larger ones.
  for (auto it = graph_sizes_.rbegin(); it != graph_sizes_.rend(); ++it) {
    const int32_t B = *it;
    forward(mt, B, B, 0, 0, opt_.max_model_len, B);  // warm-up outside capture (cuBLAS heuristics)
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    marks_.clear();
    cudaGraph_t g = nullptr;
    TWINFER_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    stream_capturing_ = true;
    try {
      forward(mt, B, B, 0, 0, opt_.max_model_len, B);
      stream_capturing_ = false;
    } catch (...) {
      stream_capturing_ = false;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    TWINFER_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    Graph gr;
    gr.batch = B;
    TWINFER_CUDA_CHECK(cudaGraphInstantiate(&gr.exec, g, 0));
    TWINFER_CUDA_CHECK(cudaGraphDestroy(g));
    graphs_.push_back(gr);
  }
  std::sort(graphs_.begin(), graphs_.end(), [](const Graph& a, const Graph& b) { return a.batch < b.batch; });
  TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  capture_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void CudaExecutor::do_swaps_and_copies(const StepPlan& plan) {
  // One 2-D copy per block moves it in every layer's K and V pool: rows are the 2 x layers
  // pools, pitch the pool size. Swaps are ordered out before in on the stream, so a block freed
  // by a swap-out and reused by a swap-in in the same step is read before it is overwritten.
  const ModelSpec& s = m_.spec;
  const size_t rows = 2 * static_cast<size_t>(s.num_layers);
  const size_t gpitch = static_cast<size_t>(num_gpu_blocks_) * block_bytes_;
  const size_t hpitch = static_cast<size_t>(num_cpu_blocks_) * block_bytes_;
  auto gblk = [&](BlockId b) { return static_cast<uint8_t*>(kv_) + static_cast<size_t>(b) * block_bytes_; };
  auto hblk = [&](BlockId b) { return static_cast<uint8_t*>(kv_host_) + static_cast<size_t>(b) * block_bytes_; };
  auto check = [](BlockId b, int32_t limit, const char* what) {
    if (b < 0 || b >= limit)
      throw std::logic_error(std::string("cuda executor: ") + what + " block " + std::to_string(b) +
                             " out of range [0, " + std::to_string(limit) + ")");
  };
  for (auto [g, h] : plan.swap_out) {
    check(g, num_gpu_blocks_, "swap_out gpu");
    check(h, num_cpu_blocks_, "swap_out cpu");
    TWINFER_CUDA_CHECK(cudaMemcpy2DAsync(hblk(h), hpitch, gblk(g), gpitch, block_bytes_, rows,
                                         cudaMemcpyDeviceToHost, stream_));
  }
  for (auto [h, g] : plan.swap_in) {
    check(h, num_cpu_blocks_, "swap_in cpu");
    check(g, num_gpu_blocks_, "swap_in gpu");
    TWINFER_CUDA_CHECK(cudaMemcpy2DAsync(gblk(g), gpitch, hblk(h), hpitch, block_bytes_, rows,
                                         cudaMemcpyHostToDevice, stream_));
  }
  for (auto [src, dst] : plan.copies) {
    check(src, num_gpu_blocks_, "copy-on-write source");
    check(dst, num_gpu_blocks_, "copy-on-write destination");
    TWINFER_CUDA_CHECK(cudaMemcpy2DAsync(gblk(dst), gpitch, gblk(src), gpitch, block_bytes_, rows,
                                         cudaMemcpyDeviceToDevice, stream_));
  }
}

StepResult CudaExecutor::execute(const StepPlan& plan) {
  const auto t0 = std::chrono::steady_clock::now();
  StepResult res;
  if (!kv_) throw std::logic_error("cuda executor: execute() before allocate_kv()");
  do_swaps_and_copies(plan);
  const ModelSpec& s = m_.spec;
  const int32_t bs = opt_.block_size;
  const size_t MB = static_cast<size_t>(max_blocks_per_seq_);
  Meta& mt = *meta_;

  // Row order: every single-token row (decodes) first, then multi-token chunks.
  ok_.assign(plan.seqs.size(), 0);
  order_.clear();
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      const ScheduledSeq& q = plan.seqs[i];
      if ((q.num_new_tokens == 1) != (pass == 0)) continue;
      std::string err = check_scheduled_seq(q, plan.block_size, bs, num_gpu_blocks_, s.vocab_size, "cuda executor");
      if (err.empty() && q.context_after() > opt_.max_model_len)
        err = "context " + std::to_string(q.context_after()) + " exceeds max_model_len " +
              std::to_string(opt_.max_model_len);
      if (!err.empty()) {
        res.failed.emplace_back(q.id, std::move(err));
        continue;
      }
      ok_[i] = 1;
      order_.push_back(i);
    }

  int32_t T = 0, D = 0, S = 0, R = 0, max_q = 0, max_ctx = 0;
  bool all_decodes_sample = true;
  rows_.clear();
  row_plan_.clear();
  logit_ids_.clear();
  mt.h(mt.pf_qstart)[0] = 0;
  for (size_t i : order_) {
    const ScheduledSeq& q = plan.seqs[i];
    if (T + q.num_new_tokens > max_tokens_)
      throw std::logic_error("cuda executor: step of more than max_num_batched_tokens rows");
    const bool single = q.num_new_tokens == 1;
    for (int32_t j = 0; j < q.num_new_tokens; ++j) {
      const int32_t p = q.context_before + j;
      mt.h(mt.tokens)[T + j] = (*q.tokens)[static_cast<size_t>(p)];
      mt.h(mt.positions)[T + j] = p;
      mt.h(mt.slots)[T + j] = static_cast<int64_t>(q.block_table[static_cast<size_t>(p / bs)]) * bs + p % bs;
    }
    int32_t* bt;
    if (single) {
      mt.h(mt.dec_ctx)[D] = q.context_after();
      bt = mt.h(mt.dec_bt) + D * MB;
      ++D;
      if (!q.samples) all_decodes_sample = false;
    } else {
      mt.h(mt.pf_ctx)[S] = q.context_after();
      mt.h(mt.pf_qstart)[S + 1] = T + q.num_new_tokens - D;
      bt = mt.h(mt.pf_bt) + S * MB;
      ++S;
      max_q = std::max(max_q, q.num_new_tokens);
    }
    const size_t nb = (static_cast<size_t>(q.context_after()) + bs - 1) / bs;
    std::copy_n(q.block_table.begin(), nb, bt);
    max_ctx = std::max(max_ctx, q.context_after());
    T += q.num_new_tokens;
    if (q.samples) {
      mt.h(mt.sample_idx)[R++] = T - 1;
      const std::span<const int32_t> all(q.tokens->data(), static_cast<size_t>(q.context_after()));
      const size_t gen = std::min<size_t>(static_cast<size_t>(std::max(q.generated, 0)), all.size());
      rows_.push_back(SampleRow{q.sampling, all.first(all.size() - gen), all.last(gen),
                                sampling_key(*q.sampling, opt_.run_seed, q.id, q.generated)});
      row_plan_.push_back(i);
      logit_ids_.push_back(q.id);
    }
  }

  sampled_.assign(rows_.size(), -1);
  if (T > 0) {
    // A decode-only step whose every row samples replays the smallest graph that holds it.
    const Graph* g = nullptr;
    prof_kind_ = S > 0 ? 1 : 0;
    if (S == 0 && all_decodes_sample && !graphs_.empty() && !opt_.profile_ops)
      for (const Graph& c : graphs_)
        if (c.batch >= D) {
          g = &c;
          break;
        }
    const bool timed = g && step_ev_[0];
    if (timed) TWINFER_CUDA_CHECK(cudaEventRecord(step_ev_[0], stream_));
    if (g) {
      // The rows were laid out in meta_'s mirror; the graph reads gmeta_'s packed copy.
      Meta& gm = *gmeta_;
      const int32_t B = g->batch;
      std::copy_n(mt.h(mt.tokens), D, gm.h(gm.tokens));
      std::copy_n(mt.h(mt.positions), D, gm.h(gm.positions));
      std::copy_n(mt.h(mt.slots), D, gm.h(gm.slots));
      std::copy_n(mt.h(mt.dec_ctx), D, gm.h(gm.dec_ctx));
      std::copy_n(mt.h(mt.dec_bt), static_cast<size_t>(D) * MB, gm.h(gm.dec_bt));
      for (int32_t r = D; r < B; ++r) {
        gm.h(gm.tokens)[r] = 0;
        gm.h(gm.positions)[r] = 0;
        gm.h(gm.slots)[r] = -1;
        gm.h(gm.dec_ctx)[r] = 0;
      }
      gm.upload_through(gm.dec_bt + static_cast<size_t>(D) * MB, stream_);
      if (timed) TWINFER_CUDA_CHECK(cudaEventRecord(step_ev_[1], stream_));
      TWINFER_CUDA_CHECK(cudaGraphLaunch(g->exec, stream_));
      if (timed) TWINFER_CUDA_CHECK(cudaEventRecord(step_ev_[2], stream_));
      ++stats_.graph_steps;
      stats_.padded_rows += B - D;
    } else {
      mark(Op::upload);
      mt.upload(mt.tokens, T, stream_);
      mt.upload(mt.positions, T, stream_);
      mt.upload(mt.slots, T, stream_);
      mt.upload(mt.sample_idx, R, stream_);
      if (D > 0) {
        mt.upload(mt.dec_ctx, D, stream_);
        mt.upload(mt.dec_bt, static_cast<size_t>(D) * MB, stream_);
      }
      if (S > 0) {
        mt.upload(mt.pf_qstart, S + 1, stream_);
        mt.upload(mt.pf_ctx, S, stream_);
        mt.upload(mt.pf_bt, static_cast<size_t>(S) * MB, stream_);
      }
      forward(mt, T, D, S, max_q, std::max(max_ctx, 1), R);
      ++stats_.eager_steps;
    }
    if (R > 0) {
      if (kept_logits_)
        TWINFER_CUDA_CHECK(cudaMemcpyAsync(kept_logits_, logits_, static_cast<size_t>(R) * s.vocab_size * 4,
                                           cudaMemcpyDeviceToDevice, stream_));
      mark(Op::sample);
      sampler_->sample(logits_, rows_, sampled_, stream_);  // synchronizes the stream
    } else {
      TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    if (timed) collect_step_timing(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    collect_marks();
  } else {
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // Back to plan order: one entry per samples == true sequence, -1 for the failed.
  by_plan_.assign(plan.seqs.size(), -1);
  for (size_t r = 0; r < row_plan_.size(); ++r) by_plan_[row_plan_[r]] = sampled_[r];
  for (size_t i = 0; i < plan.seqs.size(); ++i)
    if (plan.seqs[i].samples) res.sampled.push_back(by_plan_[i]);
  res.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::vector<float> CudaExecutor::last_logits(RequestId id) const {
  if (!kept_logits_) return {};
  for (size_t i = 0; i < logit_ids_.size(); ++i)
    if (logit_ids_[i] == id) {
      std::vector<float> out(static_cast<size_t>(m_.spec.vocab_size));
      TWINFER_CUDA_CHECK(cudaMemcpy(out.data(), kept_logits_ + i * out.size(), out.size() * 4,
                                    cudaMemcpyDeviceToHost));
      return out;
    }
  return {};
}

}  // namespace twinfer::cuda
