#include "tessera/kernels/cpu/softmax.hpp"

#include "simd_math.hpp"

namespace tessera::cpu {

void softmax(const float* x, float* out, std::int64_t N, std::int64_t C) {
  if (C == 0) return;
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* xi = x + i * C;
    float* oi = out + i * C;
    const float mx = detail::row_max(xi, C);
    const float inv = static_cast<float>(1.0 / detail::exp_shift_sum(xi, oi, C, mx));
#pragma omp simd
    for (std::int64_t j = 0; j < C; ++j) oi[j] *= inv;
  }
}

}  // namespace tessera::cpu
