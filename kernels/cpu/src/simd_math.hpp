// Branch-free float math that GCC vectorises inside `#pragma omp simd` loops (glibc's expf is a
// scalar call unless -ffast-math, which we do not use because it breaks accuracy elsewhere).
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace tessera::cpu::detail {

// Cephes expf: exp(x) = 2^n·exp(r), n = round(x/ln2), r = x − n·ln2 (two-part ln2), degree-6
// polynomial for exp(r). About 1 ulp on [-87, 88]; inputs are clamped there, so exp(−∞) returns
// ~1e-38 instead of 0 (harmless in softmax sums and in 1/(1+e)) and large inputs stay finite.
#pragma omp declare simd notinbranch
inline float exp_fast(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * (r * r) + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
  return e * std::bit_cast<float>(bits);
}

}  // namespace tessera::cpu::detail
