#include "device_math.cuh"
#include "tessera/kernels/cuda/adam.hpp"

namespace tessera::cuda {

namespace {

template <class C>
__global__ void adam_kernel(float* param, const float* grad, float* m, float* v, std::int64_t n, AdamConstants c,
                            C* copy) {
  const float omb1 = 1.0f - c.beta1, omb2 = 1.0f - c.beta2;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float p = param[i];
    const float g = grad[i] * c.grad_scale + c.l2 * p;
    const float mi = c.beta1 * m[i] + omb1 * g;
    const float vi = c.beta2 * v[i] + omb2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    const float updated = p * c.shrink - c.step_size * mi / (sqrtf(vi) * c.inv_bc2_sqrt + c.eps);
    param[i] = updated;
    if (copy) copy[i] = from_f32<C>(updated);
  }
}

}  // namespace

void adam_step(float* param, const float* grad, float* m, float* v, std::int64_t n, const AdamConstants& c,
               void* copy, Float copy_type, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const unsigned g = grid_for(n, kThreads);
  if (!copy)
    adam_kernel<float><<<g, kThreads, 0, stream>>>(param, grad, m, v, n, c, nullptr);
  else
    TESSERA_CUDA_FLOAT_SWITCH(copy_type, C, adam_kernel<C><<<g, kThreads, 0, stream>>>(param, grad, m, v, n, c, static_cast<C*>(copy)));
  check_launch("adam_step");
}

}  // namespace tessera::cuda
