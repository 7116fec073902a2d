#include "tessera/kernels/cpu/cross_entropy.hpp"

#include <cmath>

#include "simd_math.hpp"

namespace tessera::cpu {

void softmax_cross_entropy(float* logits, const std::int32_t* targets, const float* mask,
                           float* losses, std::int64_t N, std::int64_t V, bool compute_grad,
                           float grad_scale) {
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    float* x = logits + i * V;
    const std::int32_t tgt = targets[i];
    const float xt = x[tgt];  // read before the row is overwritten
    const float mx = detail::row_max(x, V);
    // With the gradient wanted, exp(x − max) is stored in place and only rescaled below.
    const double s = detail::exp_shift_sum(x, compute_grad ? x : nullptr, V, mx);
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
