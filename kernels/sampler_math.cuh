// Device twins of core/sampling.cpp's arithmetic: every operation is an explicitly rounded
// intrinsic (never contracted into a fused multiply-add), so probabilities, fixed-point masses
// and draw targets are bit-identical to the CPU sampler's.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace twinfer::cuda::sampler_detail {

// Same as core/sampling.cpp's mix64 (splitmix64 output function).
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// twinfer::sampling_exp, operation for operation.
__device__ __forceinline__ float sampling_exp(float d) {
  constexpr double kPoly[9] = {
      0x1.0000000000000p+0,  0x1.62e42feed86dep-1, 0x1.ebfbdfa352278p-3,
      0x1.c6b07fc4ca478p-5,  0x1.3b299bd2457b9p-7, 0x1.5d6e2709043e0p-10,
      0x1.41a41ab23f9bap-13, 0x1.e90e56570acb3p-17, 0x1.f733994251afap-21};
  if (!(d > -104.0f)) return 0.0f;
  if (d >= 0.0f) return 1.0f;
  const double t = __dmul_rn(static_cast<double>(d), 0x1.71547652b82fep+0);
  const int k = __double2int_rz(t);
  const double r = __dsub_rn(t, static_cast<double>(k));
  double poly = kPoly[8];
#pragma unroll
  for (int j = 7; j >= 0; --j) poly = __dadd_rn(__dmul_rn(poly, r), kPoly[j]);
  const double scale = __longlong_as_double(static_cast<long long>(1023 + k) << 52);
  return __double2float_rn(__dmul_rn(poly, scale));
}

// q * 2^44 truncated (core/sampling.cpp fixed_mass); exact product, truncating conversion.
__device__ __forceinline__ uint64_t fixed_mass(float q) { return __float2ull_rz(__fmul_rn(q, 0x1p44f)); }

// floor(r53 * mass / 2^53), r53 = mix64(key) >> 11 (core/sampling.cpp draw_target).
__device__ __forceinline__ uint64_t draw_target(uint64_t key, uint64_t mass) {
  const uint64_t r53 = mix64(key) >> 11;
  const uint64_t hi = __umul64hi(r53, mass), lo = r53 * mass;
  return (hi << 11) | (lo >> 53);
}

// Ascending order keys = descending probability, then ascending id (core/sampling.cpp order_key).
__device__ __forceinline__ uint64_t order_key(float q, int32_t id) {
  return (static_cast<uint64_t>(~__float_as_uint(q)) << 32) | static_cast<uint32_t>(id);
}
__device__ __forceinline__ float key_prob(uint64_t k) { return __uint_as_float(~static_cast<uint32_t>(k >> 32)); }
__device__ __forceinline__ int32_t key_id(uint64_t k) { return static_cast<int32_t>(static_cast<uint32_t>(k)); }

// One row's parameters as the kernels read them (packed by the host per call).
struct RowDesc {
  double top_p = 1.0;
  uint64_t key = 0;
  float temperature = 1.0f;  // applied as l / t (float), as the CPU does
  float rep = 1.0f, freq = 0.0f, pres = 0.0f;
  float min_p = 0.0f;
  int32_t top_k = -1;
  int32_t greedy = 0;        // temperature < 1e-5 or top_k == 1
  int32_t penalize = 0;      // any penalty differs from neutral
  int32_t tok_off = 0, n_prompt = 0, n_output = 0;  // prompt then output in the token array
  int32_t mask_off = 0, n_mask = 0;                 // ids set to -inf (min_tokens)
};

// What the main kernel learned about a row, for the fallback walk over the full vocab
// (rank-truncated rows only: top-k or top-p).
struct RowStats {
  float m;           // max of the scaled logits
  int32_t status;    // 0 done, 1 needs the full sort
  uint64_t total;    // fixed-point mass of all tokens (of the kept ones on the id-order path)
};

}  // namespace twinfer::cuda::sampler_detail
