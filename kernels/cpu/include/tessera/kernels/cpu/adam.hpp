// Adam / AdamW step in one fused pass over param, grad, m, v (all [n]), torch.optim semantics:
//   g = grad·grad_scale (+ weight_decay·param when not decoupled)
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//   decoupled (AdamW): param *= 1 − lr·weight_decay
//   param −= lr/(1−β1^step) · m / (√v/√(1−β2^step) + eps)
// Unfused, these are the ~8 passes over the parameters that cost PyTorch a third of its step.
// Mixed precision: with `copy` the updated param is also written there as `copy_type` (bf16 or f16)
// in the same pass — the compute copy forward and backward read.
#pragma once
#include <cstdint>

#include "tessera/kernels/cpu/convert.hpp"

namespace tessera::cpu {

struct AdamArgs {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  std::int64_t step;  // 1-based
  bool decoupled;
};

void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamArgs& a,
               std::uint16_t* copy = nullptr, Half copy_type = Half::bf16);

}  // namespace tessera::cpu
