// Dropout's mask as a pure function of (seed, counter): element i of a tensor is kept iff the
// 24-bit hash of (seed, offset + i) is at least ceil(p·2²⁴), so backward recomputes it instead of
// storing it, and every backend draws the same mask bit for bit (kernels/cpu and kernels/cuda
// share this header). The hash is two rounds of a 32-bit integer mixer (Wellons' lowbias32) keyed
// by a splitmix64 of the seed: 32-bit multiplies vectorise on AVX2 (64-bit ones do not), and every
// element is independent of the others.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/host_device.hpp"

namespace tessera::dropout {

struct Key {
  std::uint32_t k1, k2;
};

inline Key key_of(std::uint64_t seed) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ull;  // splitmix64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return {static_cast<std::uint32_t>(z), static_cast<std::uint32_t>(z >> 32)};
}

// keep iff hash ≥ threshold, threshold = ceil(p·2²⁴) clamped to [0, 2²⁴] (exact for p with ≤ 24
// fraction bits).
inline std::uint32_t threshold_of(float p) {
  const double thr = std::ceil(static_cast<double>(p) * 16777216.0);
  return static_cast<std::uint32_t>(thr < 0 ? 0 : (thr > 16777216.0 ? 16777216.0 : thr));
}

// What kept elements are multiplied by.
inline float scale_of(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

TESSERA_HOST_DEVICE inline std::uint32_t lowbias32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

// The 24 random bits of element `counter` (offset + i).
TESSERA_HOST_DEVICE inline std::uint32_t hash24(std::int64_t counter, Key key) {
  const auto lo = static_cast<std::uint32_t>(counter);
  const auto hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(counter) >> 32);
  return lowbias32(lowbias32(lo ^ key.k1) + (hi ^ key.k2)) >> 8;
}

}  // namespace tessera::dropout
