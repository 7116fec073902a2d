#include "tessera/kernels/cpu/squared_relu.hpp"

namespace tessera::cpu {

void squared_relu_forward(const float* x, float* y, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (std::int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    y[i] = r * r;
  }
}

void squared_relu_backward(const float* dy, const float* x, float* dx, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 16))
  for (std::int64_t i = 0; i < n; ++i) {
    const float r = x[i] > 0.0f ? x[i] : 0.0f;
    dx[i] = dy[i] * (2.0f * r);
  }
}

}  // namespace tessera::cpu
