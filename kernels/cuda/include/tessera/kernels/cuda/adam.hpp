// Fused Adam/AdamW over one f32 parameter (ops::adam_step; the same arithmetic as
// kernels/cpu/src/adam.cpp), writing the bf16/f16 compute copy in the same pass when given.
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

struct AdamConstants {
  float step_size;     // lr / (1 − β1^step), computed in double on the host
  float inv_bc2_sqrt;  // 1 / √(1 − β2^step)
  float beta1, beta2, eps, grad_scale;
  float l2;      // weight decay added to the gradient (Adam), 0 for AdamW
  float shrink;  // 1 − lr·weight_decay (AdamW), 1 for Adam
};

void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamConstants& c,
               void* copy, Float copy_type, cudaStream_t stream);

}  // namespace tessera::cuda
