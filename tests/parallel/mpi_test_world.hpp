// The world communicator shared by the [mpi] test cases of one process (created by the test main).
#pragma once
#include <cstdint>
#include <memory>

#include "tessera/parallel/communicator.hpp"

std::shared_ptr<tessera::Communicator> test_world();

// Rank-dependent test input: multiples of 1/4 in [-8, 16), so sums over a few ranks are exact in f32
// whatever order MPI adds them in, and results compare with ==.
inline float test_value(int rank, std::int64_t i) {
  return static_cast<float>(((rank + 1) * 37 + i * 11) % 97) * 0.25f - 8.0f;
}
