#include "tessera/kernels/cpu/softmax.hpp"

#include <limits>

#include "simd_math.hpp"

namespace tessera::cpu {

void softmax(const float* x, float* out, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* xi = x + i * C;
    float* oi = out + i * C;
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (std::int64_t j = 0; j < C; ++j) mx = xi[j] > mx ? xi[j] : mx;
    double s = 0.0;  // 50k terms far below the running sum: float would drift by ~1e-4
#pragma omp simd reduction(+ : s)
    for (std::int64_t j = 0; j < C; ++j) {
      const float e = detail::exp_fast(xi[j] - mx);
      oi[j] = e;
      s += e;
    }
    const float inv = static_cast<float>(1.0 / s);
#pragma omp simd
    for (std::int64_t j = 0; j < C; ++j) oi[j] *= inv;
  }
}

}  // namespace tessera::cpu
