// `--backend cuda`: loads the model onto the GPU, measures what a step needs, sizes the KV pool
// from --gpu-memory-utilization of the device's real memory (vLLM's rule) and captures graphs.
#include <cstdio>
#include <cstdlib>

#include "app/backend_cuda.h"
#include "app/run.h"
#include "core/error.h"
#include "kernels/cuda_executor.h"

namespace twinfer {

namespace {

// Graph executables and cuBLAS's per-graph state are allocated after the pool; keep this much
// of the budget for them (measured: a few MiB per captured size).
constexpr double kGraphReserveBytes = 512.0 * (1 << 20);

}  // namespace

std::unique_ptr<cuda::CudaExecutor> make_cuda_executor(const RunConfig& cfg, const ModelSpec& model,
                                                       MemoryPlan& plan, bool profile_ops) {
  std::string why;
  if (!cuda::device_available(&why)) throw ConfigError("--backend cuda: " + why, 1);
  if (cfg.engine.tensor_parallel_size != 1)
    throw ConfigError("--backend cuda runs on one GPU: --tensor-parallel-size must be 1", 2);
  // Weights are bf16 on the device whatever the checkpoint holds; the KV cache is bf16 or fp8.
  RunConfig eff = cfg;
  eff.dtype = "bf16";
  const std::string& kvd = cfg.engine.kv_cache_dtype;
  if (kvd != "auto" && kvd != "bf16" && kvd != "fp8")
    throw ConfigError("--kv-cache-dtype " + kvd + ": the cuda backend supports auto, bf16 and fp8", 2);
  if (kvd == "auto") eff.engine.kv_cache_dtype = "bf16";

  cuda::DeviceModel dm = cuda::DeviceModel::load(cfg.model, cfg.seed);
  if (dm.spec.num_layers != model.num_layers || dm.spec.hidden_size != model.hidden_size ||
      dm.spec.vocab_size != model.vocab_size)
    throw ConfigError(cfg.model + ": loaded weights do not match the resolved model spec", 1);
  const double weight_bytes = static_cast<double>(dm.bytes);
  const MemoryPlan nominal = plan_memory(model, 1.0e15, eff, 0.0);  // for the token limits
  cuda::CudaExecutorOptions o;
  o.block_size = cfg.engine.block_size;
  o.max_num_seqs = cfg.engine.max_num_seqs;
  o.max_num_batched_tokens = nominal.max_num_batched_tokens;
  o.max_model_len = nominal.max_model_len;
  o.kv_dtype = eff.engine.kv_cache_dtype == "fp8" ? cuda::KvDtype::fp8_e4m3 : cuda::KvDtype::bf16;
  o.enforce_eager = cfg.engine.enforce_eager;
  // Measurement knob (docs/gpu.md): TWINFER_FUSED_DECODE=0 runs small steps on the unfused
  // kernels, to time the fusion side by side.
  if (const char* f = std::getenv("TWINFER_FUSED_DECODE")) o.fuse_small_steps = std::string(f) != "0";
  o.run_seed = cfg.seed;
  o.profile_ops = profile_ops;
  // A profiled executor never replays graphs: capturing them would only cost time and memory.
  if (profile_ops) o.enforce_eager = true;
  auto ex = std::make_unique<cuda::CudaExecutor>(std::move(dm), o);
  const size_t in_use = ex->profile();
  size_t free_b = 0, total_b = 0;
  TWINFER_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  // Everything in use after the profiling step except the weights is the reserve: activations
  // of the largest step, workspaces, the CUDA context; plus room for the graphs.
  const double reserve = static_cast<double>(in_use) - weight_bytes + (o.enforce_eager ? 0.0 : kGraphReserveBytes);
  plan = plan_memory(model, static_cast<double>(total_b), eff, reserve);
  plan.weight_bytes = weight_bytes;
  ex->allocate_kv(plan.num_gpu_blocks, plan.num_cpu_blocks);
  std::fprintf(stderr,
               "cuda: %s, weights %.2f GiB (%s), reserve %.2f GiB measured, KV pool %d blocks = "
               "%lld tokens (%s), %d GEMM token counts warmed in %.1f s, %zu decode graphs "
               "captured in %.1f s%s\n",
               cfg.model.c_str(), weight_bytes / (1 << 30),
               ex->model().random ? "random on device" : "loaded",
               reserve / (1 << 30), plan.num_gpu_blocks,
               static_cast<long long>(plan.capacity_tokens), eff.engine.kv_cache_dtype.c_str(),
               ex->gemm_shapes_warmed(), ex->gemm_warm_s(), ex->graph_sizes().size(), ex->graph_capture_s(),
               o.enforce_eager ? (profile_ops ? " (op profiling: no graphs)" : " (--enforce-eager)") : "");
  return ex;
}

void register_cuda_backend() {
  register_backend("cuda", [](const RunConfig& cfg, const ModelSpec& model, MemoryPlan& plan) {
    const char* prof = std::getenv("TWINFER_PROFILE_OPS");  // `twinfer bench --profile-ops`
    const bool profile_ops = prof != nullptr && *prof != '\0' && *prof != '0';
    return std::unique_ptr<Executor>(make_cuda_executor(cfg, model, plan, profile_ops));
  });
}

}  // namespace twinfer
