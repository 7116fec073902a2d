// GELU, tanh approximation (GPT-2 / Megatron-LM): y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
//   x, y, dy, dx [n] (any shape, flattened). dx overwritten. y may alias x, dx may alias dy.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void gelu_forward(const float* x, float* y, std::int64_t n);
void gelu_backward(const float* dy, const float* x, float* dx, std::int64_t n);
// The exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)); dx = dy·(Φ(x) + x·φ(x)).
void gelu_erf_forward(const float* x, float* y, std::int64_t n);
void gelu_erf_backward(const float* dy, const float* x, float* dx, std::int64_t n);

}  // namespace tessera::cpu
