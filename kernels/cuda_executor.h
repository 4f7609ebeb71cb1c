// The GPU backend: the Llama-family forward pass with real kernels over the engine's paged KV
// cache (same block tables as the CPU reference), cuBLAS GEMMs, CUDA graphs for decode steps
// and sampling on the GPU. Nothing here schedules: the engine hands it StepPlans.
//
// Start-up is three phases so the KV pool can be sized from measured memory as vLLM does:
// construct (weights + activation buffers for the largest step), profile() (a dummy forward of
// the largest step: what is in use afterwards is everything but the pool), then
// allocate_kv() with the planned block counts, which also captures the decode graphs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/executor.h"
#include "kernels/device_model.h"
#include "kernels/ops.h"
#include "kernels/sampler.h"

namespace twinfer::cuda {

struct CudaExecutorOptions {
  int32_t block_size = 16;
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 8192;  // the largest step's token count
  int32_t max_model_len = 8192;
  KvDtype kv_dtype = KvDtype::bf16;
  bool enforce_eager = false;
  // Decode batch sizes captured as graphs; empty: vLLM's list (1, 2, 4, 8..256 by 8, then by 16
  // up to 512), cut at max_num_seqs. A decode step pads up to the next captured size.
  std::vector<int32_t> cudagraph_sizes;
  uint64_t run_seed = 0;
  // Time every op with events (graphs off); see OpProfile.
  bool profile_ops = false;
  // Steps of at most Gemm::gemv_max_rows tokens run the fused GEMVs (norm prologue, residual
  // epilogue); off: the same kernels as large steps (tests compare the two).
  bool fuse_small_steps = true;
  // Tests: keep every sampled row's raw logits (before penalties/temperature) for last_logits().
  bool keep_logits = false;
};

struct StepStats {  // counters for `twinfer bench` and calibration
  int64_t graph_steps = 0, eager_steps = 0, padded_rows = 0;
  // TWINFER_STEP_TIMING=1: graph steps timed with events, to show how much of a step the GPU
  // spends outside the replayed graph (uploads, sampling) and the host outside the GPU.
  int64_t timed_steps = 0;
  double upload_ms = 0, graph_ms = 0, sample_ms = 0, wall_ms = 0;
};

// Per-op device time, measured with events between launches (eager steps only: a profiled
// executor runs no graphs). Feeds `twinfer bench` reports and calibration.
enum class Op : int { upload, embed, norm, qkv, rope_kv, attn_decode, attn_prefill, o_proj, gate_up,
                      act, down, lm_head, sample, count };
const char* op_name(Op op);
uint32_t parse_ablate(const char* spec);  // TWINFER_ABLATE's op list -> bit mask of Op
// Which weights small steps prefetch into L2 in latency-bound gaps (measurement switch).
enum L2Prefetch : uint32_t { kPrefetchO = 1, kPrefetchOHalf = 2, kPrefetchNextQkv = 4 };
uint32_t parse_l2_prefetch(const char* spec);  // TWINFER_L2_PREFETCH's list -> bits of L2Prefetch
struct OpProfile {
  double ms[static_cast<int>(Op::count)] = {};
  int64_t calls[static_cast<int>(Op::count)] = {};
  int64_t steps = 0;
};

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(DeviceModel&& model, const CudaExecutorOptions& opt);
  ~CudaExecutor() override;
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  // Runs one forward of the largest step against a scratch pool and returns the device bytes in
  // use afterwards (weights, activations, workspaces, CUDA context): the reserve the pool
  // planner subtracts.
  size_t profile();
  // Allocates the pool (num_gpu_blocks on the device, num_cpu_blocks pinned on the host for
  // swapping) and captures the decode graphs unless enforce_eager.
  void allocate_kv(int32_t num_gpu_blocks, int32_t num_cpu_blocks);

  std::string backend() const override { return "cuda"; }
  bool real_tokens() const override { return true; }
  StepResult execute(const StepPlan& plan) override;

  const DeviceModel& model() const { return m_; }
  const CudaExecutorOptions& options() const { return opt_; }
  const StepStats& stats() const { return stats_; }
  // [0]: decode-only steps, [1]: steps with prefill rows.
  const OpProfile& op_profile(int kind = 0) const { return prof_[kind]; }
  std::string report() const override;
  size_t kv_bytes() const { return kv_bytes_; }
  const std::vector<int32_t>& graph_sizes() const { return graph_sizes_; }
  double graph_capture_s() const { return capture_s_; }
  // GEMM shapes run once at start-up so their first use in a step costs no kernel load.
  int gemm_shapes_warmed() const { return warmed_shapes_; }
  double gemm_warm_s() const { return warm_s_; }
  // Raw logits of `id` from the last step in which it sampled (keep_logits only); else empty.
  std::vector<float> last_logits(RequestId id) const;

 private:
  struct Meta;   // device + pinned mirror of one step's index arrays
  struct Graph;  // one captured decode batch size
  DeviceModel m_;
  CudaExecutorOptions opt_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  std::unique_ptr<GpuSampler> sampler_;
  std::unique_ptr<Meta> meta_;
  // Graph steps' arrays, packed back to back so a decode step uploads them in one copy (six
  // copies cost ~0.02 ms of a 6 ms batch-1 step); graphs are captured against this one.
  std::unique_ptr<Meta> gmeta_;
  std::vector<Graph> graphs_;
  std::vector<int32_t> graph_sizes_;
  double capture_s_ = 0;
  int warmed_shapes_ = 0;
  double warm_s_ = 0;
  StepStats stats_;
  OpProfile prof_[2];
  int prof_kind_ = 0;
  std::vector<cudaEvent_t> events_;  // profile_ops: a pool reused every step
  std::vector<Op> marks_;            // op started at events_[i]
  cudaEvent_t step_ev_[4] = {};      // TWINFER_STEP_TIMING: before uploads, graph, sampler, after
  bool stream_capturing_ = false;
  void mark(Op op);                  // no-op unless profile_ops
  void collect_marks();              // after the step's sync
  void collect_step_timing(double wall_ms);  // TWINFER_STEP_TIMING, after the step's sync

  int32_t max_tokens_ = 0, max_blocks_per_seq_ = 0;
  bool fused_ok_ = false;   // alignment allows the fused small-step path
  uint32_t ablate_ = 0;     // TWINFER_ABLATE (timing only)
  uint32_t l2_prefetch_ = 0;  // TWINFER_L2_PREFETCH, bits of L2Prefetch (measurement switch)
  // Activations, [max_tokens_, width] bf16 unless noted.
  bf16 *x_ = nullptr, *h_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *o_ = nullptr,
       *gu_ = nullptr, *act_ = nullptr, *fin_ = nullptr;  // fin_: [max_num_seqs, hidden]
  float* logits_ = nullptr;                              // [max_num_seqs, vocab]
  float* kept_logits_ = nullptr;                         // keep_logits: same shape
  void* attn_ws_ = nullptr;
  std::vector<void*> allocations_;

  // Pool: [layers][K, V][num_blocks][block_size * kv_dim] of bf16 or fp8.
  void* kv_ = nullptr;
  void* kv_host_ = nullptr;  // pinned swap pool, same layout with num_cpu_blocks
  float* kv_scales_ = nullptr;  // [layers][2]
  int32_t num_gpu_blocks_ = 0, num_cpu_blocks_ = 0;
  size_t block_bytes_ = 0, kv_bytes_ = 0;
  std::vector<PagedKV> layer_kv_;

  // Per step (reused).
  std::vector<uint8_t> ok_;
  std::vector<size_t> order_;        // plan indices in row order: single-token rows first
  std::vector<SampleRow> rows_;
  std::vector<size_t> row_plan_;     // sampled row -> plan index
  std::vector<int32_t> sampled_, by_plan_;
  std::vector<RequestId> logit_ids_;

  void* alloc(size_t bytes);
  void set_layer_kv(void* base, int32_t num_blocks);
  // The forward over the step whose index arrays are in mt (meta_, or gmeta_ for graphs): T
  // rows, the first D single-token decode rows, then S multi-token sequences; R rows to sample
  // (indices in mt). Launch only.
  void forward(const Meta& mt, int T, int D, int S, int max_q_len, int max_context, int R);
  void capture_graphs();
  void warm_gemms();
  void do_swaps_and_copies(const StepPlan& plan);
};

}  // namespace twinfer::cuda
