// tanh with std::tanh (glibc's tanhf, a couple of ulps at most; accuracy first, the pooler
// runs it on [B, hidden] only). Backward from the output y: 1 − y² as (1 − y)(1 + y), where 1 − y is
// exact for |y| ≥ ½ (Sterbenz), so the derivative keeps its relative accuracy near ±1 where 1 − y·y
// would cancel the rounding error of y·y.
#include "tessera/kernels/cpu/tanh.hpp"

#include <algorithm>
#include <cmath>

namespace tessera::cpu {

namespace {

constexpr std::int64_t kBlock = 4096;  // elements per task

void forward_block(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void backward_block(const float* dy, const float* y, float* dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float yi = y[i];
    dx[i] = dy[i] * ((1.0f - yi) * (1.0f + yi));
  }
}

}  // namespace

void tanh_forward(const float* x, float* y, std::int64_t n) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock;
    forward_block(x + i0, y + i0, std::min(kBlock, n - i0));
  }
}

void tanh_backward(const float* dy, const float* y, float* dx, std::int64_t n) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock;
    backward_block(dy + i0, y + i0, dx + i0, std::min(kBlock, n - i0));
  }
}

}  // namespace tessera::cpu
