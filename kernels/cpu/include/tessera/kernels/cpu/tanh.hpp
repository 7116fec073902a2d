// tanh (BERT's pooler): y = tanh(x); backward from the OUTPUT y: dx = dy·(1 − y²). The sigmoid (the
// shared expert's gate): y = 1/(1 + e^{−x}); backward dx = dy·y·(1 − y).
//   x, y, dy, dx [n] (any shape, flattened). dx overwritten. y may alias x, dx may alias dy.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void tanh_forward(const float* x, float* y, std::int64_t n);
void tanh_backward(const float* dy, const float* y, float* dx, std::int64_t n);
void sigmoid_forward(const float* x, float* y, std::int64_t n);
void sigmoid_backward(const float* dy, const float* y, float* dx, std::int64_t n);

}  // namespace tessera::cpu
