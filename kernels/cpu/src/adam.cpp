#include "tessera/kernels/cpu/adam.hpp"

#include <cmath>

#include "tessera/half.hpp"

namespace tessera::cpu {

void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamArgs& a,
               std::uint16_t* copy, Half copy_type) {
  // Bias corrections in double, like torch's Python-float arithmetic, then folded into two
  // per-step constants so the loop has one sqrt and one division per element.
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float step_size = static_cast<float>(a.lr / bc1);
  const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = a.beta1, b2 = a.beta2, omb1 = 1.0f - a.beta1, omb2 = 1.0f - a.beta2;
  const float eps = a.eps, gs = a.grad_scale;
  const float l2 = a.decoupled ? 0.0f : a.weight_decay;
  const float shrink = a.decoupled ? 1.0f - a.lr * a.weight_decay : 1.0f;
  // One loop per copy type, so that each vectorises without a branch inside.
  const auto run = [&](auto store_copy) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 14))
    for (std::int64_t i = 0; i < n; ++i) {
      const float p = param[i];
      const float g = grad[i] * gs + l2 * p;
      const float mi = b1 * m[i] + omb1 * g;
      const float vi = b2 * v[i] + omb2 * (g * g);
      m[i] = mi;
      v[i] = vi;
      const float updated = p * shrink - step_size * mi / (std::sqrt(vi) * inv_bc2_sqrt + eps);
      param[i] = updated;
      store_copy(i, updated);
    }
  };
  if (!copy)
    run([](std::int64_t, float) {});
  else if (copy_type == Half::bf16)
    run([copy](std::int64_t i, float x) { copy[i] = float_to_bf16(x); });
  else
    run([copy](std::int64_t i, float x) { copy[i] = float_to_f16(x); });
}

}  // namespace tessera::cpu
