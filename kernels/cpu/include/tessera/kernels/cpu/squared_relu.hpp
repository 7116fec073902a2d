// Squared ReLU (Primer, Nemotron-4; Megatron-LM's --squared-relu): y = max(x, 0)².
//   x, y, dy, dx [n] (any shape, flattened). dx = dy·2·max(x, 0), overwritten; y may alias x,
//   dx may alias dy.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void squared_relu_forward(const float* x, float* y, std::int64_t n);
void squared_relu_backward(const float* dy, const float* x, float* dx, std::int64_t n);

}  // namespace tessera::cpu
