// The mask is a pure function of (seed, i), so backward recomputes it instead of storing n bytes.
// The hash is two rounds of a 32-bit integer mixer (Wellons' lowbias32) keyed by a splitmix64 of
// the seed: 32-bit multiplies vectorise on AVX2 (64-bit ones do not), and every element is
// independent, so the result does not depend on the thread count.
#include "tessera/kernels/cpu/dropout.hpp"

#include <cmath>

namespace tessera::cpu {

namespace {

std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#pragma omp declare simd notinbranch
inline std::uint32_t lowbias32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

}  // namespace

void dropout_apply(const float* x, float* y, std::int64_t n, float p, std::uint64_t seed, std::int64_t offset) {
  const std::uint64_t key = splitmix64(seed);
  const auto k1 = static_cast<std::uint32_t>(key), k2 = static_cast<std::uint32_t>(key >> 32);
  // keep iff u ≥ p with u = h/2²⁴, i.e. h ≥ ceil(p·2²⁴) (exact for p with ≤ 24 fraction bits).
  const double thr = std::ceil(static_cast<double>(p) * 16777216.0);
  const auto threshold = static_cast<std::uint32_t>(thr < 0 ? 0 : (thr > 16777216.0 ? 16777216.0 : thr));
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = offset + i;  // the element's counter
    const auto lo = static_cast<std::uint32_t>(c), hi = static_cast<std::uint32_t>(c >> 32);
    const std::uint32_t h = lowbias32(lowbias32(lo ^ k1) + (hi ^ k2)) >> 8;  // 24 bits
    y[i] = h >= threshold ? x[i] * scale : 0.0f;
  }
}

}  // namespace tessera::cpu
