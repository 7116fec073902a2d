// The activations whose backward reads the output y. tanh with std::tanh (glibc's tanhf, a couple
// of ulps at most; accuracy first, the pooler runs it on [B, hidden] only); backward 1 − y² as
// (1 − y)(1 + y), where 1 − y is exact for |y| ≥ ½ (Sterbenz), so the derivative keeps its relative
// accuracy near ±1 where 1 − y·y would cancel the rounding error of y·y. The sigmoid 1/(1 + e^{−x})
// (0 where e^{−x} overflows); backward y·(1 − y).
#include "tessera/kernels/cpu/tanh.hpp"

#include <algorithm>
#include <cmath>

namespace tessera::cpu {

namespace {

constexpr std::int64_t kBlock = 4096;  // elements per task

// f(x[i]) into y, in blocks of kBlock elements across threads.
template <class F>
void map_blocks(std::int64_t n, const F& f) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (std::int64_t b = 0; b < blocks; ++b)
    for (std::int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) f(i);
}

}  // namespace

void tanh_forward(const float* x, float* y, std::int64_t n) {
  map_blocks(n, [&](std::int64_t i) { y[i] = std::tanh(x[i]); });
}

void tanh_backward(const float* dy, const float* y, float* dx, std::int64_t n) {
  map_blocks(n, [&](std::int64_t i) { dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i])); });
}

void sigmoid_forward(const float* x, float* y, std::int64_t n) {
  map_blocks(n, [&](std::int64_t i) { y[i] = 1.0f / (1.0f + std::exp(-x[i])); });
}

void sigmoid_backward(const float* dy, const float* y, float* dx, std::int64_t n) {
  map_blocks(n, [&](std::int64_t i) { dx[i] = dy[i] * (y[i] * (1.0f - y[i])); });
}

}  // namespace tessera::cpu
