// GELU, tanh form, via the identity 0.5·(1 + tanh(u)) = sigmoid(2u) = 1/(1 + e^{−2u}):
//   y  = x / (1 + e),                 e = exp(−2u), u = k·(x + 0.044715·x³), k = √(2/π)
//   y' = s + 2·x·s·(1−s)·u',          s = 1/(1+e), s·(1−s) = e·s², u' = k·(1 + 3·0.044715·x²)
// One vectorised exp per element and no cancellation for large |x| (1 − s is e·s, not 1 − s);
// torch's 0.5·x·(1 + tanh(u)) loses digits for x ≪ 0, we do not.
#include "tessera/kernels/cpu/gelu.hpp"

#include <algorithm>
#include <cmath>

#include "simd_math.hpp"

namespace tessera::cpu {

namespace {

constexpr float kK = 0.7978845608028654f;  // √(2/π)
constexpr float kC = 0.044715f;
constexpr std::int64_t kBlock = 4096;  // elements per task

inline float gelu_scalar(float x) {
  const float u = kK * (x + kC * x * x * x);
  return x / (1.0f + detail::exp_scalar(-2.0f * u));
}

inline float gelu_grad_scalar(float x) {
  const float x2 = x * x;
  const float u = kK * (x + kC * x2 * x);
  const float du = kK * (1.0f + 3.0f * kC * x2);
  const float e = detail::exp_scalar(-2.0f * u);
  const float s = 1.0f / (1.0f + e);
  return s + 2.0f * x * (e * s * s) * du;
}

void forward_block(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
#ifdef TESSERA_CPU_AVX2
  const __m256 k = _mm256_set1_ps(kK), c = _mm256_set1_ps(kC), m2 = _mm256_set1_ps(-2.0f),
               one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(xv, xv), xv);
    const __m256 u = _mm256_mul_ps(k, _mm256_fmadd_ps(c, x3, xv));
    const __m256 e = detail::exp8(_mm256_mul_ps(m2, u));
    _mm256_storeu_ps(y + i, _mm256_div_ps(xv, _mm256_add_ps(one, e)));
  }
#endif
  for (; i < n; ++i) y[i] = gelu_scalar(x[i]);
}

void backward_block(const float* dy, const float* x, float* dx, std::int64_t n) {
  std::int64_t i = 0;
#ifdef TESSERA_CPU_AVX2
  const __m256 k = _mm256_set1_ps(kK), c = _mm256_set1_ps(kC), c3 = _mm256_set1_ps(3.0f * kC),
               m2 = _mm256_set1_ps(-2.0f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 x2 = _mm256_mul_ps(xv, xv);
    const __m256 u = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, x2), xv, xv));
    const __m256 du = _mm256_mul_ps(k, _mm256_fmadd_ps(c3, x2, one));
    const __m256 e = detail::exp8(_mm256_mul_ps(m2, u));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    const __m256 ess = _mm256_mul_ps(e, _mm256_mul_ps(s, s));
    const __m256 g = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(two, xv), ess), du, s);
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), g));
  }
#endif
  for (; i < n; ++i) dx[i] = dy[i] * gelu_grad_scalar(x[i]);
}

}  // namespace

void gelu_forward(const float* x, float* y, std::int64_t n) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock;
    forward_block(x + i0, y + i0, std::min(kBlock, n - i0));
  }
}

void gelu_backward(const float* dy, const float* x, float* dx, std::int64_t n) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i0 = b * kBlock;
    backward_block(dy + i0, x + i0, dx + i0, std::min(kBlock, n - i0));
  }
}

// The exact form is used by BERT's LM head only (rows × hidden, not rows × ffn): std::erf per element,
// in double so that Φ keeps its digits where it is near 0 (x ≪ 0), with no vector path.
void gelu_erf_forward(const float* x, float* y, std::int64_t n) {
#pragma omp parallel for schedule(static) if (n > 4 * kBlock)
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = static_cast<float>(0.5 * v * std::erfc(-v * M_SQRT1_2));
  }
}

void gelu_erf_backward(const float* dy, const float* x, float* dx, std::int64_t n) {
  constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1/√(2π)
#pragma omp parallel for schedule(static) if (n > 4 * kBlock)
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double g = 0.5 * std::erfc(-v * M_SQRT1_2) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    dx[i] = static_cast<float>(dy[i] * g);
  }
}

}  // namespace tessera::cpu
