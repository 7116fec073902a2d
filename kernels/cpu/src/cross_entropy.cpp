#include "tessera/kernels/cpu/cross_entropy.hpp"

#include <cmath>
#include <limits>

#include "simd_math.hpp"

namespace tessera::cpu {

void softmax_cross_entropy(float* logits, const std::int32_t* targets, const float* mask,
                           float* losses, std::int64_t N, std::int64_t V, bool compute_grad,
                           float grad_scale) {
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    float* x = logits + i * V;
    const std::int32_t tgt = targets[i];
    const float xt = x[tgt];
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (std::int64_t j = 0; j < V; ++j) mx = x[j] > mx ? x[j] : mx;
    double s = 0.0;  // 50k terms far below the running sum: float would drift by ~1e-4
    if (compute_grad) {
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < V; ++j) {
        const float e = detail::exp_fast(x[j] - mx);
        x[j] = e;
        s += e;
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < V; ++j) s += detail::exp_fast(x[j] - mx);
    }
    losses[i] = static_cast<float>(static_cast<double>(mx) + std::log(s) - xt);
    if (compute_grad) {
      const float w = grad_scale * (mask ? mask[i] : 1.0f);
      const float c = static_cast<float>(w / s);
#pragma omp simd
      for (std::int64_t j = 0; j < V; ++j) x[j] *= c;
      x[tgt] -= w;
    }
  }
}

}  // namespace tessera::cpu
