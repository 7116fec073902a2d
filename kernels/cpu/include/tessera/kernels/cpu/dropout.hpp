// Dropout without a stored mask: element i is kept iff u(seed, i) ≥ p, where u ∈ [0,1) is a
// counter-based hash of (seed, i) with 24 random bits; kept elements are scaled by 1/(1−p).
// The same (seed, p) reproduces the same mask, so backward is the same kernel applied to dy.
//   x, y [n]; y may alias x. p ∈ [0,1]; p = 0 copies, p = 1 zeroes.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void dropout_apply(const float* x, float* y, std::int64_t n, float p, std::uint64_t seed);

}  // namespace tessera::cpu
