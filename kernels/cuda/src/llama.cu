// RMSNorm, SwiGLU and RoPE kernels (kernels/cuda/llama.hpp). Rows of RMSNorm: one warp per row, as
// layer_norm.cu; dw: one thread per column summing the rows in order (deterministic; a simple pass
// that is not on the critical path of a Llama layer). SwiGLU and RoPE: grid-stride elementwise.
#include "device_math.cuh"
#include "tessera/kernels/cuda/llama.hpp"
#include "tessera/rope_frequency.hpp"

namespace tessera::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kRowThreads = kWarpsPerBlock * 32;
constexpr int kThreads = 256;

template <class T>
__global__ void rms_norm_forward_kernel(const T* x, const T* w, float eps, T* y, float* rstd, std::int64_t N,
                                        std::int64_t C) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < N;
       row += warps) {
    const T* xr = x + row * C;
    T* yr = y + row * C;
    float s = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) {
      const float v = to_f32(xr[c]);
      s += v * v;
    }
    const float r = 1.0f / sqrtf(warp_sum(s) / static_cast<float>(C) + eps);
    for (std::int64_t c = lane; c < C; c += 32) yr[c] = from_f32<T>(to_f32(w[c]) * (to_f32(xr[c]) * r));
    if (lane == 0) rstd[row] = r;
  }
}

template <class T>
__global__ void rms_norm_dx_kernel(const T* dy, const T* x, const T* w, const float* rstd, T* dx, std::int64_t N,
                                   std::int64_t C) {
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); row < N;
       row += warps) {
    const T* dyr = dy + row * C;
    const T* xr = x + row * C;
    T* dxr = dx + row * C;
    const float r = rstd[row];
    float sgx = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) sgx += to_f32(dyr[c]) * to_f32(w[c]) * (to_f32(xr[c]) * r);
    const float m = warp_sum(sgx) / static_cast<float>(C);
    for (std::int64_t c = lane; c < C; c += 32)
      dxr[c] = from_f32<T>(r * (to_f32(dyr[c]) * to_f32(w[c]) - to_f32(xr[c]) * r * m));
  }
}

template <class T, class G>
__global__ void rms_norm_dw_kernel(const T* dy, const T* x, const float* rstd, G* dw, std::int64_t N, std::int64_t C) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.0f;
  for (std::int64_t r = 0; r < N; ++r) s += to_f32(dy[r * C + c]) * (to_f32(x[r * C + c]) * rstd[r]);
  dw[c] = from_f32<G>(to_f32(dw[c]) + s);
}

template <class T>
__global__ void swiglu_forward_kernel(const T* x, T* y, std::int64_t N, std::int64_t F, GatedLinearUnit g) {
  const std::int64_t n = N * F, stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::int64_t row = i / F, f = i - row * F;
    y[i] = from_f32<T>(glu_value(to_f32(x[row * 2 * F + f]), to_f32(x[row * 2 * F + F + f]), g));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(const T* dy, const T* x, T* dx, std::int64_t N, std::int64_t F,
                                       GatedLinearUnit g) {
  const std::int64_t n = N * F, stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::int64_t row = i / F, f = i - row * F;
    float d0 = 0.0f, d1 = 0.0f;
    glu_grads(to_f32(x[row * 2 * F + f]), to_f32(x[row * 2 * F + F + f]), to_f32(dy[i]), g, d0, d1);
    dx[row * 2 * F + f] = from_f32<T>(d0);
    dx[row * 2 * F + F + f] = from_f32<T>(d1);
  }
}

// One thread per rotated pair (row, head, i < dim/2).
template <class T>
__global__ void rope_kernel(T* x, std::int64_t BT, std::int64_t T_, std::int64_t H, std::int64_t D, std::int64_t W,
                            std::int64_t dim, double base, double scaling_factor, double interpolation,
                            RopeYarn yarn, bool interleaved, std::int64_t position_offset, bool inverse) {
  const std::int64_t half = dim / 2, n = BT * H * half;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    const std::int64_t i = k % half, h = (k / half) % H, row = k / (half * H), t = row % T_;
    const double angle = rope_angle(position_offset + t, i, dim, base, scaling_factor, interpolation, yarn);
    double sd, cd;
    sincos(angle, &sd, &cd);
    const double m = rope_magnitude(yarn);  // YaRN's scale of cos and sin (1 without it)
    const float c = static_cast<float>(m * cd), s = static_cast<float>(m * (inverse ? -sd : sd));
    T* xh = x + row * W + h * D;
    T* a = xh + (interleaved ? 2 * i : i);
    T* b = a + (interleaved ? 1 : half);
    const float va = to_f32(*a), vb = to_f32(*b);
    *a = from_f32<T>(va * c - vb * s);
    *b = from_f32<T>(vb * c + va * s);
  }
}

}  // namespace

void rms_norm_forward(Float t, const void* x, const void* w, float eps, void* y, float* rstd, std::int64_t N,
                      std::int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            rms_norm_forward_kernel<T><<<grid_for(N, kWarpsPerBlock), kRowThreads, 0, stream>>>(
                                static_cast<const T*>(x), static_cast<const T*>(w), eps, static_cast<T*>(y), rstd, N,
                                C));
  check_launch("rms_norm_forward");
}

void rms_norm_backward(Float t, const void* dy, const void* x, const void* w, const float* rstd, void* dx, Float dw_t,
                       void* dw, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            rms_norm_dx_kernel<T><<<grid_for(N, kWarpsPerBlock), kRowThreads, 0, stream>>>(
                                static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(w), rstd,
                                static_cast<T*>(dx), N, C);
                            if (dw_t == Float::f32) {
                              rms_norm_dw_kernel<T, float><<<grid_for(C, kThreads), kThreads, 0, stream>>>(
                                  static_cast<const T*>(dy), static_cast<const T*>(x), rstd, static_cast<float*>(dw), N,
                                  C);
                            } else {
                              rms_norm_dw_kernel<T, T><<<grid_for(C, kThreads), kThreads, 0, stream>>>(
                                  static_cast<const T*>(dy), static_cast<const T*>(x), rstd, static_cast<T*>(dw), N,
                                  C);
                            });
  check_launch("rms_norm_backward");
}

void swiglu_forward(Float t, const void* x, void* y, std::int64_t N, std::int64_t F, const GatedLinearUnit& g,
                    cudaStream_t stream) {
  if (N * F == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            swiglu_forward_kernel<T><<<grid_for(N * F, kThreads), kThreads, 0, stream>>>(
                                static_cast<const T*>(x), static_cast<T*>(y), N, F, g));
  check_launch("swiglu_forward");
}

void swiglu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t N, std::int64_t F,
                     const GatedLinearUnit& g, cudaStream_t stream) {
  if (N * F == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            swiglu_backward_kernel<T><<<grid_for(N * F, kThreads), kThreads, 0, stream>>>(
                                static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), N, F, g));
  check_launch("swiglu_backward");
}

void rope(Float t, void* x, std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t D, std::int64_t W,
          std::int64_t dim, double base, double scaling_factor, double interpolation, const RopeYarn& yarn,
          bool interleaved, std::int64_t position_offset, bool inverse, cudaStream_t stream) {
  const std::int64_t n = B * T * H * (dim / 2);
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, E,
                            rope_kernel<E><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                static_cast<E*>(x), B * T, T, H, D, W, dim, base, scaling_factor,
                                interpolation, yarn, interleaved, position_offset, inverse));
  check_launch("rope");
}

}  // namespace tessera::cuda
