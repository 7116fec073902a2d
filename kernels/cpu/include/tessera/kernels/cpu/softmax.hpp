// Row-wise softmax over the last dim: x, out [N,C]; out may alias x.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void softmax(const float* x, float* out, std::int64_t N, std::int64_t C);

}  // namespace tessera::cpu
