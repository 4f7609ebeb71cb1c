// Launchers of the GPU engine's kernels. Each launcher checks its launch assumptions (shapes,
// alignment, limits) and throws CudaError naming the kernel and the value when one is broken,
// enqueues on `stream` and checks the launch. Nothing here synchronizes or allocates, so every
// launcher is safe inside CUDA-graph capture.
//
// Layouts (row-major unless said otherwise):
// - activations: bf16 [T, features], T = tokens of the step (decode rows first, then prefill).
// - weights: bf16 in Hugging Face's nn.Linear layout [out, in]; y = x W^T.
// - qkv: [T, (n_heads + 2 n_kv_heads) head_dim]: q heads, then k heads, then v heads.
// - paged KV cache, one pool per layer for K and one for V: [num_blocks, block_size, n_kv_heads,
//   head_dim] of bf16 or fp8 e4m3. A token's slot is block * block_size + offset_in_block.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace twinfer::cuda {

using bf16 = __nv_bfloat16;

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CudaError("<what>: <cuda error string>") when e != cudaSuccess.
void check(cudaError_t e, const char* what);
#define TWINFER_CUDA_CHECK(expr) ::twinfer::cuda::check((expr), #expr)
// Checks cudaGetLastError() after a launch; `kernel` names it in the message.
void check_launch(const char* kernel);

// Programmatic Dependent Launch (kernels/pdl.cuh): when on, the forward's kernels (GEMV,
// elementwise, rope_kv_write, decode attention) are launched so that each may start while its
// predecessor drains, waiting in-kernel before it reads the predecessor's output; the results are
// bit-identical either way. Default: on when the current device is sm_90 or newer; set_pdl(true)
// on an older device leaves it off. Process-wide; set it outside graph capture (a captured graph
// keeps the setting it was captured with).
void set_pdl(bool on);
bool pdl_enabled();

enum class KvDtype : int32_t { bf16 = 0, fp8_e4m3 = 1 };

// One layer's paged cache. fp8: stored = x / scale (saturated to +-448), read = stored * scale;
// the scales are device scalars so graphs captured once stay valid when they change.
struct PagedKV {
  void* k = nullptr;  // [num_blocks, block_size, n_kv_heads, head_dim]
  void* v = nullptr;  // same
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  KvDtype dtype = KvDtype::bf16;
  const float* k_scale = nullptr;  // device scalar; ignored for bf16
  const float* v_scale = nullptr;
};

// ---- elementwise (kernels/elementwise.cu) -------------------------------------------------
// out[t, :] = table[ids[t], :]. ids are checked on the host before upload.
void embed(const bf16* table, const int32_t* ids, int T, int H, bf16* out, cudaStream_t s);
// out = x / sqrt(mean(x^2) + eps) * w, fp32 math, per row of H.
void rms_norm(const bf16* x, const bf16* w, int T, int H, float eps, bf16* out, cudaStream_t s);
// residual += delta (stored bf16, as HF adds in the model dtype); out = rms_norm(residual) * w.
void add_rms_norm(bf16* residual, const bf16* delta, const bf16* w, int T, int H, float eps,
                  bf16* out, cudaStream_t s);
// out[T, I] = silu(gu[:, :I]) * gu[:, I:]; gu is [T, 2I].
void silu_mul(const bf16* gu, int T, int I, bf16* out, cudaStream_t s);
// Adds the optional qkv bias, rotates q and k heads in place (rotate-half pairing i with
// i + head_dim/2; angle = positions[t] * inv_freq[i], inv_freq [head_dim/2] with any rope
// scaling applied, cos/sin in fp32) and writes k and v of each row to its slot in `kv`
// (slot_mapping[t] < 0: not written, e.g. CUDA-graph padding rows).
void rope_kv_write(bf16* qkv, const bf16* bias, int T, const int32_t* positions,
                   const float* inv_freq, int n_heads, int n_kv_heads, int head_dim,
                   const int64_t* slot_mapping, PagedKV kv, cudaStream_t s);

// ---- attention (kernels/attention_decode.cu, kernels/attention_prefill.cu) ----------------
// Decode: one query row per sequence. q is [B, q_stride] (q heads at the start of each row),
// out [B, n_heads * head_dim]. context_lens[b] keys at positions 0..len-1 (len 0: out = 0).
// block_tables [B, max_blocks_per_seq] int32. Split-K over partitions of kDecodePartition
// tokens (64 when B <= 8, so small batches still spread over the SMs): the grid covers max_context (a host bound, e.g. max_model_len, so a captured graph serves any
// length up to it); partitions past a sequence's length exit at once. `workspace` holds the
// partial results and the split-K arrival counters: decode_attention_workspace_bytes() bytes,
// zero-filled once before first use (cudaMemset; the kernel leaves the counters at zero).
constexpr int kDecodePartition = 512;
size_t decode_attention_workspace_bytes(int B, int n_heads, int head_dim, int max_context);
// The leading bytes of that workspace that hold the counters (the rest may hold anything).
size_t decode_attention_counter_bytes(int n_heads);
void paged_decode_attention(const bf16* q, int q_stride, int B, const int32_t* context_lens,
                            const int32_t* block_tables, int max_blocks_per_seq, PagedKV kv,
                            int n_heads, float scale, int max_context, void* workspace,
                            bf16* out, cudaStream_t s);
// Prefill (and any multi-token chunk): S sequences; rows q_start[s] .. q_start[s+1]-1 of q are
// sequence s's new tokens, at positions ctx_after[s] - q_len .. ctx_after[s]-1, attending
// causally to keys 0..position, all read from the paged cache (their own K/V already written).
// q_start [S+1] and ctx_after [S] are device arrays; max_q_len is a host bound for the grid.
void paged_prefill_attention(const bf16* q, int q_stride, int S, const int32_t* q_start,
                             const int32_t* ctx_after, const int32_t* block_tables,
                             int max_blocks_per_seq, PagedKV kv, int n_heads, float scale,
                             int max_q_len, bf16* out, cudaStream_t s);

// ---- GEMM (kernels/gemm.cu) ----------------------------------------------------------------
// y[T, out] = x[T, in] W^T with W [out, in], fp32 accumulation. Small T takes a hand-written
// bandwidth-bound GEMV path; larger T goes to cuBLAS. Owns the cuBLAS handle and a fixed
// workspace so it can be captured in graphs.
class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes = 32u << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  void set_stream(cudaStream_t s);
  // bf16 output.
  void run(const bf16* x, int T, int in, const bf16* W, int out, bf16* y);
  // fp32 output (logits).
  void run_f32(const bf16* x, int T, int in, const bf16* W, int out, float* y);
  // Largest T that takes the GEMV path (0 disables it). From T = 3 the GEMV measured slower
  // than cuBLAS (each 16-byte weight load needs T x-vectors from L1): decode at batch 3, 4 and 8
  // ran at 442, 591 and 1,159 tok/s with 2 here against 398, 532 and 694 with 8 (H100, one run;
  // docs/performance.md). `twinfer_bench gemm_small_t` compares the kernels per shape.
  int gemv_max_rows = 2;
  // Large T through cuBLASLt with a cached per-shape plan instead of cublasGemmEx.
  bool use_lt = false;

 private:
  struct LtPlans;
  void run_cublas(const bf16* x, int T, int in, const bf16* W, int out, void* y, int ytype);
  std::unique_ptr<LtPlans> lt_;
  void* handle_ = nullptr;  // cublasHandle_t
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
};
// The hand-written small-T path on its own (tests and benchmarks call it directly).
void gemv_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* y, cudaStream_t s);
// The gate/up projection fused with SiLU-and-multiply (small T): W_gu [2I, in] holds the gate rows
// then the up rows; act[T, I] = silu(g) * u with g = bf16(x W_gu[:I]^T), u = bf16(x W_gu[I:]^T),
// rounded exactly as silu_mul rounds, so act is bit-identical to gemv_bf16 then silu_mul (and the
// [T, 2I] intermediate is never written). Needs in % 8 == 0 and 16-byte aligned x and W_gu
// (gemv_gate_up_silu_applicable); the executor takes it when T <= Gemm::gemv_max_rows.
bool gemv_gate_up_silu_applicable(const bf16* x, int in, const bf16* W_gu);
void gemv_gate_up_silu_bf16(const bf16* x, int T, int in, const bf16* W_gu, int I, bf16* act,
                            cudaStream_t s);

// The decode fast path (small T): RMSNorm fused into the GEMV that consumes it and the residual
// add fused into the GEMV that produces it, so a layer is qkv, rope/KV, attention, o, gate/up,
// down with no separate norm kernels. x is the residual stream [T, in] (not yet normalized);
// the norm is computed per block with rms_norm's roundings (1/rms may differ from rms_norm's in
// its last bit: another summation order). Same requirements as gemv_gate_up_silu_applicable
// plus a 16-byte aligned norm weight.
void gemv_norm_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in, const bf16* W,
                    int out, bf16* y, cudaStream_t s);
void gemv_norm_gate_up_silu_bf16(const bf16* x, const bf16* norm_w, float eps, int T, int in,
                                 const bf16* W_gu, int I, bf16* act, cudaStream_t s);
// residual[T, out] = bf16(residual + bf16(x W^T)), bit-identical to gemv_bf16 then the add of
// add_rms_norm.
void gemv_add_bf16(const bf16* x, int T, int in, const bf16* W, int out, bf16* residual,
                   cudaStream_t s);

// ---- L2 prefetch (kernels/l2_prefetch.cu) -------------------------------------------------
// Bulk prefetch into L2 (sm_90; a no-op kernel elsewhere) of `rows` ranges of `len` bytes, each
// starting `skip` bytes into a row of `pitch` bytes from `base`; all multiples of 16. Launched
// with PDL and issued after its dependency wait (kernels/l2_prefetch.cu says why).
void l2_prefetch_rows(const void* base, int64_t rows, int64_t pitch, int64_t skip, int64_t len,
                      cudaStream_t s);

// ---- utilities (kernels/elementwise.cu) ----------------------------------------------------
// Fills n bf16 with N(0, std) from a counter-based generator keyed by seed (random checkpoints
// made on the device, and test inputs).
void fill_normal(bf16* x, size_t n, float std, uint64_t seed, cudaStream_t s);
// Conversions used by loaders and tests.
void f32_to_bf16(const float* x, size_t n, bf16* y, cudaStream_t s);
void bf16_to_f32(const bf16* x, size_t n, float* y, cudaStream_t s);
// True when a CUDA device is present and usable; `why` gets the reason when not.
bool device_available(std::string* why = nullptr);

}  // namespace twinfer::cuda
