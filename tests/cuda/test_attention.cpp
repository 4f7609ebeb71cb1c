// Paged attention kernels (decode split-K, prefill on tensor cores, and the lab v1) against a
// dense fp64 CPU reference over the gathered K/V. The cache uses shuffled physical blocks; every
// slot not holding a sequence's token (unused blocks, the tail of a last block, the block that
// pads table rows) is NaN, so any read of a wrong slot poisons the output.
// Tolerances: bf16 outputs (and bf16 P in prefill) give rel_l2 ~3e-3; bound 1e-2. fp8 e4m3 KV
// (3 mantissa bits, relative rounding <= 1/16): bound 6e-2 against the reference from the
// unquantized values and 1e-2 against the reference from the dequantized values.
#include <cuda_fp8.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>

#include "kernels/lab/attention_lab.h"
#include "tests/cuda/gpu_test.h"

namespace {

using namespace twinfer::cuda;
using twinfer::test::DevBuf;
using twinfer::test::rel_l2;

// A paged cache holding lens[s] tokens for each sequence, values N(0, 1).
struct Cache {
  int n_kv = 0, D = 0, bs = 0, num_blocks = 0, mbps = 0;
  KvDtype dt = KvDtype::bf16;
  float ks = 1.f, vs = 1.f;
  std::vector<float> k_true, v_true, k_deq, v_deq;  // per element of the pool; NaN if unused
  std::vector<int32_t> table;                        // [S, mbps]
  std::unique_ptr<DevBuf<uint8_t>> dk, dv;
  std::unique_ptr<DevBuf<float>> dscale;  // k_scale, v_scale
  std::unique_ptr<DevBuf<int32_t>> dtable;

  PagedKV kv() const {
    PagedKV p;
    p.k = dk->p;
    p.v = dv->p;
    p.num_blocks = num_blocks;
    p.block_size = bs;
    p.n_kv_heads = n_kv;
    p.head_dim = D;
    p.dtype = dt;
    p.k_scale = dscale->p;
    p.v_scale = dscale->p + 1;
    return p;
  }
  size_t offset(int s, int t, int h) const {
    const size_t block = size_t(table[size_t(s) * mbps + t / bs]);
    return ((block * bs + t % bs) * n_kv + h) * D;
  }
};

Cache make_cache(const std::vector<int>& lens, int n_kv, int D, int bs, KvDtype dt,
                 std::mt19937& rng) {
  Cache c;
  c.n_kv = n_kv;
  c.D = D;
  c.bs = bs;
  c.dt = dt;
  if (dt == KvDtype::fp8_e4m3) {
    c.ks = 1.f / 64;  // N(0,1) / scale stays well inside +-448
    c.vs = 1.f / 48;
  }
  int needed = 0, max_blocks = 0;
  for (int len : lens) {
    needed += (len + bs - 1) / bs;
    max_blocks = std::max(max_blocks, (len + bs - 1) / bs);
  }
  c.num_blocks = needed + 3;      // spare blocks stay NaN
  c.mbps = max_blocks + 1;        // the padding entry points at a NaN block
  std::vector<int32_t> perm(c.num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  const int32_t nan_block = perm[needed];
  c.table.assign(lens.size() * c.mbps, nan_block);
  int next = 0;
  for (size_t s = 0; s < lens.size(); ++s)
    for (int i = 0; i < (lens[s] + bs - 1) / bs; ++i) c.table[s * c.mbps + i] = perm[next++];

  const size_t n = size_t(c.num_blocks) * bs * n_kv * D;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  c.k_true.assign(n, nan);
  c.v_true.assign(n, nan);
  c.k_deq.assign(n, nan);
  c.v_deq.assign(n, nan);
  const size_t esize = dt == KvDtype::bf16 ? 2 : 1;
  std::vector<uint8_t> kb(n * esize, 0xFF), vb(n * esize, 0xFF);  // 0xFF.. is NaN in both
  std::normal_distribution<float> nd(0.f, 1.f);
  auto store = [&](std::vector<float>& tru, std::vector<float>& deq, std::vector<uint8_t>& raw,
                   size_t i, float scale) {
    if (dt == KvDtype::bf16) {
      const __nv_bfloat16 b = __float2bfloat16(nd(rng));
      tru[i] = deq[i] = __bfloat162float(b);
      std::memcpy(&raw[2 * i], &b, 2);
    } else {
      const float x = nd(rng);
      const __nv_fp8_e4m3 f(x / scale);
      tru[i] = x;
      deq[i] = float(f) * scale;
      std::memcpy(&raw[i], &f, 1);
    }
  };
  for (size_t s = 0; s < lens.size(); ++s)
    for (int t = 0; t < lens[s]; ++t)
      for (int h = 0; h < n_kv; ++h) {
        const size_t base = c.offset(int(s), t, h);
        for (int d = 0; d < D; ++d) {
          store(c.k_true, c.k_deq, kb, base + d, c.ks);
          store(c.v_true, c.v_deq, vb, base + d, c.vs);
        }
      }
  c.dk = std::make_unique<DevBuf<uint8_t>>(kb.size());
  c.dv = std::make_unique<DevBuf<uint8_t>>(vb.size());
  c.dk->upload(kb);
  c.dv->upload(vb);
  c.dscale = std::make_unique<DevBuf<float>>(2);
  c.dscale->upload({c.ks, c.vs});
  c.dtable = std::make_unique<DevBuf<int32_t>>(c.table.size());
  c.dtable->upload(c.table);
  return c;
}

// Random bf16 q rows [rows, q_stride]; host copy holds the rounded values.
struct Queries {
  int q_stride = 0;
  std::vector<float> host;
  std::unique_ptr<DevBuf<bf16>> dev;
};
Queries make_queries(int rows, int q_stride, std::mt19937& rng) {
  Queries q;
  q.q_stride = q_stride;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<bf16> h(size_t(rows) * q_stride);
  q.host.resize(h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = __float2bfloat16(nd(rng));
    q.host[i] = __bfloat162float(h[i]);
  }
  q.dev = std::make_unique<DevBuf<bf16>>(h.size());
  q.dev->upload(h);
  return q;
}

// Dense softmax(q k^T * scale) v over keys 0..n_keys-1 of sequence s, kv head h, in fp64.
void ref_row(const Cache& c, const std::vector<float>& kvals, const std::vector<float>& vvals,
             const float* q, int s, int h, int n_keys, float scale, float* out) {
  std::vector<double> logits(std::max(n_keys, 0));
  double m = -1e300;
  for (int t = 0; t < n_keys; ++t) {
    const float* k = &kvals[c.offset(s, t, h)];
    double dot = 0;
    for (int d = 0; d < c.D; ++d) dot += double(q[d]) * k[d];
    logits[t] = dot * scale;
    m = std::max(m, logits[t]);
  }
  std::vector<double> acc(c.D, 0.0);
  double sum = 0;
  for (int t = 0; t < n_keys; ++t) {
    const double p = std::exp(logits[t] - m);
    sum += p;
    const float* v = &vvals[c.offset(s, t, h)];
    for (int d = 0; d < c.D; ++d) acc[d] += p * v[d];
  }
  for (int d = 0; d < c.D; ++d) out[d] = n_keys > 0 ? float(acc[d] / sum) : 0.f;
}

std::vector<float> to_f32(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = __bfloat162float(v[i]);
  return f;
}

// Checks a kernel output against the references from the stored (and, for fp8, the true)
// values; rows_zero lists output rows [n_heads * D] that must be exactly zero.
void check_out(const std::vector<float>& got, const std::vector<float>& ref_deq,
               const std::vector<float>& ref_true, KvDtype dt, const std::vector<int>& rows_zero,
               int row_len) {
  const double e_deq = rel_l2(got, ref_deq);
  INFO("rel_l2 vs dequantized reference " << e_deq);
  CHECK(e_deq < 1e-2);
  if (dt == KvDtype::fp8_e4m3) {
    const double e_true = rel_l2(got, ref_true);
    INFO("rel_l2 vs unquantized reference " << e_true);
    CHECK(e_true < 6e-2);
  }
  for (int r : rows_zero)
    for (int i = 0; i < row_len; ++i) REQUIRE(got[size_t(r) * row_len + i] == 0.f);
}

struct DecodeCase {
  int n_heads, n_kv, D, bs;
  KvDtype dt;
  std::vector<int> lens;
};

enum class Impl { fast, cuda_core, v1 };
const char* impl_name(Impl i) { return i == Impl::fast ? " fast" : i == Impl::cuda_core ? " cuda-core" : " v1"; }

void run_decode_case(const DecodeCase& dc, Impl impl, uint32_t seed) {
  std::mt19937 rng(seed);
  const int B = int(dc.lens.size());
  Cache c = make_cache(dc.lens, dc.n_kv, dc.D, dc.bs, dc.dt, rng);
  const int q_stride = (dc.n_heads + 2 * dc.n_kv) * dc.D;
  Queries q = make_queries(B, q_stride, rng);
  const int max_len = *std::max_element(dc.lens.begin(), dc.lens.end());
  const int max_context = std::max(1, max_len + 7);  // a host bound, not the exact maximum
  const float scale = 1.f / std::sqrt(float(dc.D));
  const int row_len = dc.n_heads * dc.D;

  std::vector<float> ref_deq(size_t(B) * row_len), ref_true(size_t(B) * row_len);
  std::vector<int> zero_rows;
  for (int b = 0; b < B; ++b) {
    if (dc.lens[b] == 0) zero_rows.push_back(b);
    for (int h = 0; h < dc.n_heads; ++h) {
      const float* qr = &q.host[size_t(b) * q_stride + size_t(h) * dc.D];
      const int kvh = h / (dc.n_heads / dc.n_kv);
      const size_t o = size_t(b) * row_len + size_t(h) * dc.D;
      ref_row(c, c.k_deq, c.v_deq, qr, b, kvh, dc.lens[b], scale, &ref_deq[o]);
      ref_row(c, c.k_true, c.v_true, qr, b, kvh, dc.lens[b], scale, &ref_true[o]);
    }
  }
  DevBuf<int32_t> lens(B);
  lens.upload(dc.lens);
  DevBuf<bf16> out(size_t(B) * row_len);
  out.poison();
  DevBuf<uint8_t> ws(decode_attention_workspace_bytes(B, dc.n_heads, dc.D, max_context));
  ws.poison();  // partials never written must not be read; the counters must start at zero
  TWINFER_CUDA_CHECK(cudaMemset(ws.p, 0, decode_attention_counter_bytes(dc.n_heads)));
  if (impl != Impl::v1) {
    lab::set_decode_attention_tensor_cores(impl == Impl::fast);
    paged_decode_attention(q.dev->p, q_stride, B, lens.p, c.dtable->p, c.mbps, c.kv(), dc.n_heads,
                           scale, max_context, ws.p, out.p, nullptr);
    lab::set_decode_attention_tensor_cores(true);
  } else
    lab::paged_decode_attention_v1(q.dev->p, q_stride, B, lens.p, c.dtable->p, c.mbps, c.kv(),
                                   dc.n_heads, scale, max_context, out.p, nullptr);
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  check_out(to_f32(out.download()), ref_deq, ref_true, dc.dt, zero_rows, row_len);
}

const char* dt_name(KvDtype dt) { return dt == KvDtype::bf16 ? "bf16" : "fp8"; }

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> cases;
  for (KvDtype dt : {KvDtype::bf16, KvDtype::fp8_e4m3}) {
    // Llama-3-8B heads; lengths at block and partition boundaries, > one partition, and 0.
    cases.push_back({32, 8, 128, 16, dt, {1, 16, 17, 511, 512, 513, 0, 1500, 4100, 1025}});
    // Batch <= 8 (64-key partitions): lengths around 64 and long ones.
    cases.push_back({32, 8, 128, 16, dt, {63, 64, 65, 4100, 1, 200}});
    cases.push_back({8, 8, 64, 8, dt, {3, 700, 0, 64, 1030}});     // GQA 1
    cases.push_back({16, 2, 128, 128, dt, {129, 1, 2000, 255}});    // GQA 8, big blocks
    cases.push_back({8, 1, 32, 32, dt, {33, 600, 5, 0}});           // tiny, GQA 8
    cases.push_back({12, 4, 16, 64, dt, {70, 1, 513}});             // GQA 3, head_dim 16
    cases.push_back({6, 2, 256, 16, dt, {600, 9}});                 // head_dim 256
    cases.push_back({4, 2, 40, 8, dt, {45, 0, 530}});               // generic head_dim 40
  }
  return cases;
}

}  // namespace

TEST_CASE("paged decode attention matches the fp64 reference", "[gpu][attention]") {
  TWINFER_REQUIRE_GPU();
  uint32_t seed = 1;
  for (const DecodeCase& dc : decode_cases()) {
    for (Impl impl : {Impl::fast, Impl::cuda_core, Impl::v1}) {
      INFO("heads " << dc.n_heads << "/" << dc.n_kv << " D " << dc.D << " block " << dc.bs << " "
                    << dt_name(dc.dt) << impl_name(impl));
      run_decode_case(dc, impl, seed++);
    }
  }
}

namespace {

struct PrefillCase {
  int n_heads, n_kv, D, bs;
  KvDtype dt;
  std::vector<int> q_lens, ctx_after;  // ctx_after >= q_len: the rest is a cached prefix
};

void run_prefill_case(const PrefillCase& pc, Impl impl, uint32_t seed) {
  std::mt19937 rng(seed);
  const int S = int(pc.q_lens.size());
  Cache c = make_cache(pc.ctx_after, pc.n_kv, pc.D, pc.bs, pc.dt, rng);
  std::vector<int32_t> q_start(S + 1, 0);
  for (int s = 0; s < S; ++s) q_start[s + 1] = q_start[s] + pc.q_lens[s];
  const int T = q_start[S];
  const int q_stride = (pc.n_heads + 2 * pc.n_kv) * pc.D;
  Queries q = make_queries(T, q_stride, rng);
  const float scale = 1.f / std::sqrt(float(pc.D));
  const int row_len = pc.n_heads * pc.D;
  std::vector<float> ref_deq(size_t(T) * row_len), ref_true(size_t(T) * row_len);
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < pc.q_lens[s]; ++i) {
      const int row = q_start[s] + i, pos = pc.ctx_after[s] - pc.q_lens[s] + i;
      for (int h = 0; h < pc.n_heads; ++h) {
        const float* qr = &q.host[size_t(row) * q_stride + size_t(h) * pc.D];
        const int kvh = h / (pc.n_heads / pc.n_kv);
        const size_t o = size_t(row) * row_len + size_t(h) * pc.D;
        ref_row(c, c.k_deq, c.v_deq, qr, s, kvh, pos + 1, scale, &ref_deq[o]);
        ref_row(c, c.k_true, c.v_true, qr, s, kvh, pos + 1, scale, &ref_true[o]);
      }
    }
  DevBuf<int32_t> dq_start(S + 1), dctx(S);
  dq_start.upload(q_start);
  dctx.upload(pc.ctx_after);
  DevBuf<bf16> out(size_t(T) * row_len);
  out.poison();
  // A host bound above the true maximum: the extra tiles must exit cleanly.
  const int max_q_len = *std::max_element(pc.q_lens.begin(), pc.q_lens.end()) + 37;
  if (impl == Impl::fast)
    paged_prefill_attention(q.dev->p, q_stride, S, dq_start.p, dctx.p, c.dtable->p, c.mbps,
                            c.kv(), pc.n_heads, scale, max_q_len, out.p, nullptr);
  else
    lab::paged_prefill_attention_v1(q.dev->p, q_stride, S, dq_start.p, dctx.p, c.dtable->p,
                                    c.mbps, c.kv(), pc.n_heads, scale, max_q_len, out.p, nullptr);
  TWINFER_CUDA_CHECK(cudaDeviceSynchronize());
  check_out(to_f32(out.download()), ref_deq, ref_true, pc.dt, {}, row_len);
}

std::vector<PrefillCase> prefill_cases() {
  std::vector<PrefillCase> cases;
  for (KvDtype dt : {KvDtype::bf16, KvDtype::fp8_e4m3}) {
    // Several sequences: a plain prompt, one row, tile edges, cached prefixes.
    cases.push_back({32, 8, 128, 16, dt, {300, 1, 64, 65, 130, 7}, {300, 1, 64, 400, 130, 1500}});
    cases.push_back({8, 8, 64, 8, dt, {129, 50}, {129, 333}});        // GQA 1
    cases.push_back({16, 2, 128, 32, dt, {200}, {777}});              // GQA 8, prefix
    cases.push_back({8, 1, 32, 64, dt, {70, 3}, {70, 90}});           // tiny
    cases.push_back({6, 2, 16, 128, dt, {100}, {140}});               // head_dim 16, GQA 3
    cases.push_back({4, 2, 40, 8, dt, {33, 20}, {33, 61}});           // generic head_dim 40
    cases.push_back({4, 2, 256, 16, dt, {40}, {90}});                 // generic head_dim 256
  }
  return cases;
}

}  // namespace

TEST_CASE("paged prefill attention matches the fp64 reference", "[gpu][attention]") {
  TWINFER_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const PrefillCase& pc : prefill_cases()) {
    for (Impl impl : {Impl::fast, Impl::v1}) {
      INFO("heads " << pc.n_heads << "/" << pc.n_kv << " D " << pc.D << " block " << pc.bs << " "
                    << dt_name(pc.dt) << (impl == Impl::fast ? " fast" : " v1"));
      run_prefill_case(pc, impl, seed++);
    }
  }
}

TEST_CASE("paged decode attention replays from a CUDA graph with new lengths",
          "[gpu][attention]") {
  TWINFER_REQUIRE_GPU();
  std::mt19937 rng(7);
  const int n_heads = 8, n_kv = 2, D = 128, bs = 16, B = 3, max_context = 3000;
  const std::vector<int> full = {2900, 600, 40};
  Cache c = make_cache(full, n_kv, D, bs, KvDtype::bf16, rng);
  const int q_stride = n_heads * D;
  Queries q = make_queries(B, q_stride, rng);
  const float scale = 1.f / std::sqrt(float(D));
  DevBuf<int32_t> lens(B);
  DevBuf<bf16> out(size_t(B) * n_heads * D);
  DevBuf<uint8_t> ws(decode_attention_workspace_bytes(B, n_heads, D, max_context));
  ws.zero();
  cudaStream_t st;
  TWINFER_CUDA_CHECK(cudaStreamCreate(&st));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  TWINFER_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  paged_decode_attention(q.dev->p, q_stride, B, lens.p, c.dtable->p, c.mbps, c.kv(), n_heads,
                         scale, max_context, ws.p, out.p, st);
  TWINFER_CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  TWINFER_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (const std::vector<int>& now : {std::vector<int>{2900, 1, 0}, std::vector<int>{513, 600, 40}}) {
    lens.upload(now);
    out.poison();
    TWINFER_CUDA_CHECK(cudaGraphLaunch(exec, st));
    TWINFER_CUDA_CHECK(cudaStreamSynchronize(st));
    std::vector<float> ref(size_t(B) * n_heads * D);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < n_heads; ++h)
        ref_row(c, c.k_deq, c.v_deq, &q.host[size_t(b) * q_stride + size_t(h) * D], b,
                h / (n_heads / n_kv), now[b], scale, &ref[(size_t(b) * n_heads + h) * D]);
    const double e = rel_l2(to_f32(out.download()), ref);
    INFO("lengths " << now[0] << "," << now[1] << "," << now[2] << " rel_l2 " << e);
    CHECK(e < 1e-2);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(st);
}

TEST_CASE("attention launchers reject unsupported shapes", "[gpu][attention]") {
  TWINFER_REQUIRE_GPU();
  DevBuf<uint8_t> pool(1 << 16);
  DevBuf<int32_t> ints(64);
  DevBuf<bf16> buf(4096);
  PagedKV kv;
  kv.k = kv.v = pool.p;
  kv.num_blocks = 4;
  kv.block_size = 16;
  kv.n_kv_heads = 2;
  kv.head_dim = 12;  // not a multiple of 8
  auto decode = [&](const PagedKV& k, int n_heads) {
    paged_decode_attention(buf.p, 512, 1, ints.p, ints.p, 4, k, n_heads, 0.1f, 64, pool.p, buf.p,
                           nullptr);
  };
  auto prefill = [&](const PagedKV& k, int n_heads) {
    paged_prefill_attention(buf.p, 512, 1, ints.p, ints.p, ints.p, 4, k, n_heads, 0.1f, 64, buf.p,
                            nullptr);
  };
  CHECK_THROWS_AS(decode(kv, 4), CudaError);
  CHECK_THROWS_AS(prefill(kv, 4), CudaError);
  kv.head_dim = 264;  // above 256
  CHECK_THROWS_AS(decode(kv, 2), CudaError);
  kv.head_dim = 64;
  CHECK_THROWS_AS(decode(kv, 3), CudaError);  // 3 q heads over 2 kv heads
  CHECK_THROWS_AS(prefill(kv, 3), CudaError);
  kv.dtype = KvDtype::fp8_e4m3;  // no scales
  CHECK_THROWS_AS(decode(kv, 4), CudaError);
  CHECK_THROWS_WITH(prefill(kv, 4), Catch::Contains("k_scale"));
}
