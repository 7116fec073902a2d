// Dropout without a stored mask: element i is kept iff u(seed, offset + i) ≥ p, where u ∈ [0,1) is
// a counter-based hash of (seed, counter) with 24 random bits; kept elements are scaled by 1/(1−p).
// The same (seed, p, offset) reproduces the same mask, so backward is the same kernel applied to dy.
// `offset` is the position of x[0] in a larger tensor: a slice of it (a sequence-parallel shard of
// token rows) draws exactly the mask that slice gets when the whole tensor is dropped out at once.
//   x, y [n]; y may alias x. p ∈ [0,1]; p = 0 copies, p = 1 zeroes. offset ≥ 0.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void dropout_apply(const float* x, float* y, std::int64_t n, float p, std::uint64_t seed, std::int64_t offset = 0);

}  // namespace tessera::cpu
