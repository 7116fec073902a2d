// GELU (tanh form) via the identity 0.5·(1 + tanh(u)) = sigmoid(2u) = 1/(1 + e^{−2u}):
//   y  = x / (1 + e),                 e = exp(−2u), u = k·(x + 0.044715·x³), k = √(2/π)
//   y' = s + 2·x·s·(1−s)·u',          s = 1/(1+e), s·(1−s) = e/(1+e)², u' = k·(1 + 3·0.044715·x²)
// One vectorised exp per element and no cancellation for large |x| (1 − s is e·s, not 1 − s).
#include "tessera/kernels/cpu/gelu.hpp"

#include "simd_math.hpp"

namespace tessera::cpu {

namespace {
constexpr float kK = 0.7978845608028654f;  // √(2/π)
constexpr float kC = 0.044715f;
constexpr std::int64_t kParallelMin = 1 << 14;
}  // namespace

void gelu_forward(const float* x, float* y, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float u = kK * (xi + kC * xi * xi * xi);
    y[i] = xi / (1.0f + detail::exp_fast(-2.0f * u));
  }
}

void gelu_backward(const float* dy, const float* x, float* dx, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    const float xi = x[i];
    const float x2 = xi * xi;
    const float u = kK * (xi + kC * x2 * xi);
    const float du = kK * (1.0f + 3.0f * kC * x2);
    const float e = detail::exp_fast(-2.0f * u);
    const float s = 1.0f / (1.0f + e);
    dx[i] = dy[i] * (s + 2.0f * xi * (e * s * s) * du);
  }
}

}  // namespace tessera::cpu
