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

void cross_entropy_shard_stats(float* logits, const std::int32_t* targets, std::int64_t first_id,
                               float* row_max, float* sum_exp, float* target_logit, std::int64_t N,
                               std::int64_t V, bool keep_exp) {
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    float* x = logits + i * V;
    const std::int64_t t = targets[i] - first_id;
    target_logit[i] = (t >= 0 && t < V) ? x[t] : 0.0f;  // read before the row is overwritten
    const float mx = detail::row_max(x, V);
    row_max[i] = mx;
    sum_exp[i] = static_cast<float>(detail::exp_shift_sum(x, keep_exp ? x : nullptr, V, mx));
  }
}

void cross_entropy_shard_grad(float* exp_logits, const std::int32_t* targets, std::int64_t first_id,
                              const float* mask, const float* row_max, const float* global_max,
                              const float* global_sum, float grad_scale, std::int64_t N,
                              std::int64_t V) {
#pragma omp parallel for schedule(static) if (N * V > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    float* x = exp_logits + i * V;
    const float w = grad_scale * (mask ? mask[i] : 1.0f);
    const float c = static_cast<float>(w * std::exp(static_cast<double>(row_max[i]) - global_max[i]) / global_sum[i]);
#pragma omp simd
    for (std::int64_t j = 0; j < V; ++j) x[j] *= c;
    const std::int64_t t = targets[i] - first_id;
    if (t >= 0 && t < V) x[t] -= w;
  }
}

void cross_entropy_shard_rescale(const float* row_max, const float* sum_exp, const float* global_max,
                                 float* sum_at_global, std::int64_t N) {
  for (std::int64_t i = 0; i < N; ++i)
    sum_at_global[i] = static_cast<float>(sum_exp[i] * std::exp(static_cast<double>(row_max[i]) - global_max[i]));
}

void cross_entropy_shard_loss(const float* global_max, const float* global_sum, const float* target_logit,
                              float* losses, std::int64_t N) {
  for (std::int64_t i = 0; i < N; ++i)
    losses[i] = static_cast<float>(static_cast<double>(global_max[i]) + std::log(static_cast<double>(global_sum[i])) -
                                   target_logit[i]);
}

}  // namespace tessera::cpu
