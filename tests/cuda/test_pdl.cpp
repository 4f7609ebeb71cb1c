// Programmatic Dependent Launch (kernels/pdl.cuh): a decode-layer chain of every PDL-launched
// kernel (embed, rms_norm, GEMV, rope_kv_write, split-K decode attention with its reduce,
// add_rms_norm, the fused gate/up + SiLU GEMV, silu_mul, the fp32 GEMV) must give the same bits
// with PDL off, on, and on inside a captured CUDA graph. A kernel that read its input before
// griddepcontrol.wait would race with its predecessor and show up here as differing bits
// (nondeterministically; the chain is run several times to give races a chance).
#include <cmath>
#include <cstring>

#include "kernels/lab/gemv_lab.h"
#include "tests/cuda/bf16_host.h"
#include "tests/cuda/gpu_test.h"

using namespace twinfer;
using namespace twinfer::test;
using twinfer::cuda::bf16;

namespace {

// Llama-like shapes, small: GQA group 2, head_dim 64, context lengths crossing partitions.
constexpr int kV = 1000, kH = 256, kNH = 4, kNKV = 2, kHD = 64, kI = 384, kB = 3;
constexpr int kQD = kNH * kHD, kQKV = (kNH + 2 * kNKV) * kHD;
constexpr int kBlock = 16, kMaxCtx = 1536, kMbps = kMaxCtx / kBlock, kNumBlocks = kB * kMbps;
constexpr float kEps = 1e-5f;

struct Chain {
  DevBuf<bf16> table{size_t(kV) * kH}, wn1{kH}, wn2{kH}, wqkv{size_t(kQKV) * kH},
      wo{size_t(kH) * kQD}, wgu{size_t(2 * kI) * kH}, wd{size_t(kH) * kI};
  DevBuf<bf16> kc{size_t(kNumBlocks) * kBlock * kNKV * kHD}, vc{size_t(kNumBlocks) * kBlock * kNKV * kHD};
  DevBuf<int32_t> ids{kB}, pos{kB}, ctx{kB}, bt{size_t(kB) * kMbps}, rows{kB};
  DevBuf<int64_t> slots{kB};
  DevBuf<float> inv_freq{kHD / 2}, logits{size_t(kB) * kV};
  DevBuf<bf16> x{size_t(kB) * kH}, h{size_t(kB) * kH}, qkv{size_t(kB) * kQKV}, attn{size_t(kB) * kQD},
      o{size_t(kB) * kH}, act{size_t(kB) * kI}, gu{size_t(kB) * 2 * kI}, act2{size_t(kB) * kI},
      fin{size_t(kB) * kH};
  DevBuf<char> ws{cuda::decode_attention_workspace_bytes(kB, kNH, kHD, kMaxCtx)};
  cuda::PagedKV kv;

  Chain() {
    uint64_t seed = 1;
    for (DevBuf<bf16>* b : {&table, &wn1, &wn2, &kc, &vc})
      cuda::fill_normal(b->p, b->n, 1.f, seed++, nullptr);
    for (DevBuf<bf16>* b : {&wqkv, &wo, &wgu, &wd}) cuda::fill_normal(b->p, b->n, 0.05f, seed++, nullptr);
    ws.zero();
    TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<int32_t> lens = {1, 700, 1100};  // 1, 2 and 3 partitions of 512
    std::vector<int32_t> hids(kB), hpos(kB), hbt(size_t(kB) * kMbps), hrows(kB);
    std::vector<int64_t> hslots(kB);
    for (int b = 0; b < kB; ++b) {
      hids[b] = (b * 397 + 11) % kV;
      hpos[b] = lens[b] - 1;
      hrows[b] = kB - 1 - b;
      for (int i = 0; i < kMbps; ++i) hbt[size_t(b) * kMbps + i] = (b * kMbps + i * 11) % kNumBlocks;
      hslots[b] = int64_t(hbt[size_t(b) * kMbps + hpos[b] / kBlock]) * kBlock + hpos[b] % kBlock;
    }
    std::vector<float> hf(kHD / 2);
    for (int i = 0; i < kHD / 2; ++i) hf[i] = float(std::pow(10000.0, -2.0 * i / kHD));
    ids.upload(hids);
    pos.upload(hpos);
    ctx.upload(lens);
    bt.upload(hbt);
    rows.upload(hrows);
    slots.upload(hslots);
    inv_freq.upload(hf);
    kv.k = kc.p;
    kv.v = vc.p;
    kv.num_blocks = kNumBlocks;
    kv.block_size = kBlock;
    kv.n_kv_heads = kNKV;
    kv.head_dim = kHD;
  }

  // One decode layer plus the final norm and lm_head; every output is a pure function of the
  // constant inputs (x is re-embedded, the cache slots get the same values each time).
  void run(cudaStream_t s) {
    cuda::embed(table.p, ids.p, kB, kH, x.p, s);
    cuda::rms_norm(x.p, wn1.p, kB, kH, kEps, h.p, s);
    cuda::gemv_bf16(h.p, kB, kH, wqkv.p, kQKV, qkv.p, s);
    cuda::rope_kv_write(qkv.p, nullptr, kB, pos.p, inv_freq.p, kNH, kNKV, kHD, slots.p, kv, s);
    cuda::paged_decode_attention(qkv.p, kQKV, kB, ctx.p, bt.p, kMbps, kv, kNH, 0.125f, kMaxCtx,
                                 ws.p, attn.p, s);
    cuda::gemv_bf16(attn.p, kB, kQD, wo.p, kH, o.p, s);
    cuda::add_rms_norm(x.p, o.p, wn2.p, kB, kH, kEps, h.p, s);
    cuda::gemv_bf16(h.p, kB, kH, wgu.p, 2 * kI, gu.p, s);
    cuda::silu_mul(gu.p, kB, kI, act2.p, s);
    cuda::gemv_gate_up_silu_bf16(h.p, kB, kH, wgu.p, kI, act.p, s);
    cuda::gemv_bf16(act.p, kB, kI, wd.p, kH, o.p, s);
    cuda::add_rms_norm(x.p, o.p, wn1.p, kB, kH, kEps, h.p, s);
    cuda::embed(h.p, rows.p, kB, kH, fin.p, s);  // row gather, as the executor does for lm_head
    cuda::gemv_f32(fin.p, kB, kH, table.p, kV, logits.p, s);
  }

  void poison_outputs() {
    for (DevBuf<bf16>* b : {&x, &h, &qkv, &attn, &o, &act, &gu, &act2, &fin}) b->poison();
    logits.poison();
    TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  }

  // Everything a later step would read: the outputs, the residual and the cache.
  std::vector<char> snapshot() const {
    std::vector<char> all;
    auto add = [&](const void* p, size_t n) {
      const size_t at = all.size();
      all.resize(at + n);
      std::memcpy(all.data() + at, p, n);
    };
    const std::vector<float> l = logits.download();
    const std::vector<bf16> xs = x.download(), a = attn.download(), k = kc.download(),
                            v = vc.download(), q = qkv.download();
    add(l.data(), l.size() * sizeof(float));
    add(xs.data(), xs.size() * sizeof(bf16));
    add(a.data(), a.size() * sizeof(bf16));
    add(q.data(), q.size() * sizeof(bf16));
    add(k.data(), k.size() * sizeof(bf16));
    add(v.data(), v.size() * sizeof(bf16));
    return all;
  }
};

// Runs the chain `reps` times on s (eager or as one graph) and checks every run against `want`.
void run_and_compare(Chain& c, cudaStream_t s, bool graph, const std::vector<char>& want) {
  cudaGraphExec_t ge = nullptr;
  cudaGraph_t g = nullptr;
  if (graph) {
    TWINFER_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    c.run(s);
    TWINFER_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    TWINFER_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
  }
  for (int rep = 0; rep < 5; ++rep) {
    INFO("graph=" << graph << " rep=" << rep);
    c.poison_outputs();
    if (graph) TWINFER_CUDA_CHECK(cudaGraphLaunch(ge, s));
    else c.run(s);
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto got = c.snapshot();
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0);
    const auto a = c.act.download(), a2 = c.act2.download();
    CHECK(std::memcmp(a.data(), a2.data(), a.size() * sizeof(bf16)) == 0);
  }
  if (ge) cudaGraphExecDestroy(ge);
  if (g) cudaGraphDestroy(g);
}

}  // namespace

TEST_CASE("PDL on and off give identical bits on a decode-layer chain", "[gpu][pdl]") {
  TWINFER_REQUIRE_GPU();
  const bool was = cuda::pdl_enabled();
  cudaStream_t s = nullptr;
  TWINFER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  {
    Chain c;
    cuda::set_pdl(false);
    CHECK_FALSE(cuda::pdl_enabled());
    c.poison_outputs();
    c.run(s);
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto want = c.snapshot();
    // Sanity of the reference run itself: finite logits.
    for (float v : c.logits.download()) REQUIRE(std::isfinite(v));

    run_and_compare(c, s, false, want);  // PDL off, repeated: the chain is deterministic
    cuda::set_pdl(true);
    int dev = 0, major = 0;
    TWINFER_CUDA_CHECK(cudaGetDevice(&dev));
    TWINFER_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CHECK(cuda::pdl_enabled() == (major >= 9));
    run_and_compare(c, s, false, want);  // eager with PDL
    run_and_compare(c, s, true, want);   // captured with PDL (programmatic graph edges)
  }
  cudaStreamDestroy(s);
  cuda::set_pdl(was);
}
