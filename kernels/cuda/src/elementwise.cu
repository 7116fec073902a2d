#include <cmath>

#include "device_math.cuh"
#include "tessera/dropout_mask.hpp"
#include "tessera/kernels/cuda/elementwise.hpp"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

#define GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)

template <class T>
__global__ void fill_kernel(T* x, std::int64_t n, float v) {
  const T value = from_f32<T>(v);
  GRID_STRIDE(i, n) x[i] = value;
}

template <class E>
__global__ void fill_pattern_kernel(E* x, std::int64_t n, E value) {
  GRID_STRIDE(i, n) x[i] = value;
}

// Casts move bits exactly as the CPU's conversions (tessera/half.hpp, x86's F16C) do, NaN payloads
// included: a NaN keeps its sign and leading payload bits and comes out quiet. (CUDA's intrinsics
// return one canonical NaN instead; arithmetic kernels may use them, casts may not.)
__device__ __forceinline__ std::uint32_t f32_bits(float f) { return __float_as_uint(f); }
__device__ __forceinline__ float half_bits_to_f32(std::uint16_t h, Float t) {
  if (t == Float::bf16) return __uint_as_float(static_cast<std::uint32_t>(h) << 16);
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return __uint_as_float(sign | 0x7f800000u | (mant ? 0x400000u | (mant << 13) : 0u));
  if (exp == 0) {  // zero or subnormal: mant · 2⁻²⁴, exact in f32
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}
__device__ __forceinline__ std::uint16_t f32_to_half_bits(float f, Float t) {
  const std::uint32_t u = f32_bits(f);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  if (t == Float::bf16) {
    if (nan) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
    return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  if (nan) return static_cast<std::uint16_t>(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
  return __half_as_ushort(__float2half_rn(f));
}

// Between distinct float types: f32 ↔ bf16/f16, and bf16 ↔ f16 through f32.
__global__ void cast_kernel(const void* src, Float from, void* dst, Float to, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = from == Float::f32 ? static_cast<const float*>(src)[i]
                                       : half_bits_to_f32(static_cast<const std::uint16_t*>(src)[i], from);
    if (to == Float::f32)
      static_cast<float*>(dst)[i] = v;
    else
      static_cast<std::uint16_t*>(dst)[i] = f32_to_half_bits(v, to);
  }
}

template <class E>
__global__ void copy_2d_kernel(const E* src, std::int64_t src_stride, E* dst, std::int64_t dst_stride, std::int64_t rows,
                               std::int64_t cols) {
  GRID_STRIDE(i, rows * cols) {
    const std::int64_t r = i / cols, c = i - r * cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

__global__ void arange_mod_kernel(std::int32_t* out, std::int64_t n, std::int64_t start, std::int64_t period) {
  GRID_STRIDE(i, n) out[i] = static_cast<std::int32_t>((start + i) % period);
}

// GELU, tanh form, through 0.5·(1 + tanh(u)) = 1/(1 + e^{−2u}) as kernels/cpu/src/gelu.cpp: no
// cancellation for x ≪ 0. The exponent is clamped so that e stays finite (e·s² is then 0, not NaN).
__device__ __forceinline__ float gelu(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x / (1.0f + expf(fminf(-2.0f * u, 88.0f)));
}
__device__ __forceinline__ float gelu_grad(float x) {
  const float k = 0.7978845608028654f, c = 0.044715f;
  const float x2 = x * x;
  const float u = k * (x + c * x2 * x);
  const float du = k * (1.0f + 3.0f * c * x2);
  const float e = expf(fminf(-2.0f * u, 88.0f));
  const float s = 1.0f / (1.0f + e);
  return s + 2.0f * x * (e * s * s) * du;
}

// The exact GELU x·Φ(x), Φ(x) = ½·erfc(−x/√2) (erfc keeps Φ's digits for x ≪ 0); Φ' = φ.
__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * erfcf(-x * 0.7071067811865476f); }
__device__ __forceinline__ float gelu_erf_grad(float x) {
  return 0.5f * erfcf(-x * 0.7071067811865476f) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}

template <class T, bool Erf>
__global__ void gelu_forward_kernel(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = to_f32(x[i]);
    y[i] = from_f32<T>(Erf ? gelu_erf(v) : gelu(v));
  }
}
template <class T, bool Erf>
__global__ void gelu_backward_kernel(const T* dy, const T* x, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float v = to_f32(x[i]);
    dx[i] = from_f32<T>(to_f32(dy[i]) * (Erf ? gelu_erf_grad(v) : gelu_grad(v)));
  }
}

template <class T>
__global__ void squared_relu_forward_kernel(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float r = fmaxf(to_f32(x[i]), 0.0f);
    y[i] = from_f32<T>(r * r);
  }
}
template <class T>
__global__ void squared_relu_backward_kernel(const T* dy, const T* x, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) dx[i] = from_f32<T>(to_f32(dy[i]) * (2.0f * fmaxf(to_f32(x[i]), 0.0f)));
}

// tanh: tanhf (2 ulp, no -use_fast_math). Backward from the output y, as (1 − y)(1 + y) like
// kernels/cpu/src/tanh.cpp: 1 − y is exact for |y| ≥ ½, so 1 − y² keeps its digits near ±1, where
// 1 − y·y would cancel.
template <class T>
__global__ void tanh_forward_kernel(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f32<T>(tanhf(to_f32(x[i])));
}
template <class T>
__global__ void tanh_backward_kernel(const T* dy, const T* y, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float yi = to_f32(y[i]);
    dx[i] = from_f32<T>(to_f32(dy[i]) * ((1.0f - yi) * (1.0f + yi)));
  }
}

// The sigmoid as kernels/cpu/src/tanh.cpp computes it: 1/(1 + expf(−x)), backward y·(1 − y).
template <class T>
__global__ void sigmoid_forward_kernel(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f32<T>(1.0f / (1.0f + expf(-to_f32(x[i]))));
}
template <class T>
__global__ void sigmoid_backward_kernel(const T* dy, const T* y, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float yi = to_f32(y[i]);
    dx[i] = from_f32<T>(to_f32(dy[i]) * (yi * (1.0f - yi)));
  }
}

// The CPU's mask bit for bit (tessera/dropout_mask.hpp).
template <class T>
__global__ void dropout_kernel(const T* x, T* y, std::int64_t n, dropout::Key key, std::uint32_t threshold, float scale,
                               std::int64_t offset) {
  GRID_STRIDE(i, n) y[i] = from_f32<T>(dropout::hash24(offset + i, key) >= threshold ? to_f32(x[i]) * scale : 0.0f);
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::int64_t n) {
  GRID_STRIDE(i, n) out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}
template <class T>
__global__ void axpy_kernel(float alpha, const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f32<T>(to_f32(y[i]) + alpha * to_f32(x[i]));
}
template <class T>
__global__ void add_bias_kernel(T* y, const T* bias, std::int64_t N, std::int64_t C) {
  GRID_STRIDE(i, N * C) y[i] = from_f32<T>(to_f32(y[i]) + to_f32(bias[i % C]));
}
template <class T>
__global__ void scale_kernel(T* x, float s, std::int64_t n) {
  GRID_STRIDE(i, n) x[i] = from_f32<T>(to_f32(x[i]) * s);
}
template <class T>
__global__ void scale_rows_kernel(const T* x, const float* w, T* out, std::int64_t N, std::int64_t C) {
  GRID_STRIDE(i, N * C) out[i] = from_f32<T>(to_f32(x[i]) * w[i / C]);
}
// One warp a row: lanes stride over the columns, then warp_sum.
template <class T>
__global__ void row_dot_kernel(const T* a, const T* b, float* out, std::int64_t N, std::int64_t C) {
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x % 32;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < N;
       row += warps) {
    float s = 0.0f;
    for (std::int64_t c = lane; c < C; c += 32) s += to_f32(a[row * C + c]) * to_f32(b[row * C + c]);
    s = warp_sum(s);
    if (lane == 0) out[row] = s;
  }
}

// Column sums: block (bx, by) sums column bx·32 + lane over rows by·rows_per_block … (+ rows_per_block),
// 32 columns × 8 row-lanes per block, then a fixed tree over the 8 lanes.
constexpr int kColLanes = 32, kRowLanes = 8;
constexpr std::int64_t kRowsPerBlock = 256;

template <class T>
__global__ void column_partial_kernel(const T* dy, float* partial, std::int64_t N, std::int64_t C) {
  __shared__ float acc[kRowLanes][kColLanes];
  const std::int64_t c = blockIdx.x * static_cast<std::int64_t>(kColLanes) + threadIdx.x;
  const std::int64_t r0 = blockIdx.y * kRowsPerBlock;
  const std::int64_t r1 = min(N, r0 + kRowsPerBlock);
  float s = 0.0f;
  if (c < C)
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) s += to_f32(dy[r * C + c]);
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.0f;
    for (int k = 0; k < kRowLanes; ++k) total += acc[k][threadIdx.x];
    partial[blockIdx.y * C + c] = total;
  }
}

template <class D>
__global__ void column_finish_kernel(const float* partial, std::int64_t blocks, D* db, std::int64_t C) {
  GRID_STRIDE(c, C) {
    float s = 0.0f;
    for (std::int64_t b = 0; b < blocks; ++b) s += partial[b * C + c];
    db[c] = from_f32<D>(to_f32(db[c]) + s);
  }
}

}  // namespace

void fill(Float t, void* x, std::int64_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, fill_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), n, value));
  check_launch("fill");
}

void fill_pattern(void* x, std::int64_t n, int element_bytes, std::uint64_t pattern, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned g = grid_for(n, kThreads);
  switch (element_bytes) {
    case 1: fill_pattern_kernel<<<g, kThreads, 0, stream>>>(static_cast<std::uint8_t*>(x), n, static_cast<std::uint8_t>(pattern)); break;
    case 2: fill_pattern_kernel<<<g, kThreads, 0, stream>>>(static_cast<std::uint16_t*>(x), n, static_cast<std::uint16_t>(pattern)); break;
    case 4: fill_pattern_kernel<<<g, kThreads, 0, stream>>>(static_cast<std::uint32_t*>(x), n, static_cast<std::uint32_t>(pattern)); break;
    default: fill_pattern_kernel<<<g, kThreads, 0, stream>>>(static_cast<std::uint64_t*>(x), n, pattern); break;
  }
  check_launch("fill");
}

void cast(Float from, const void* src, Float to, void* dst, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (from == to) {  // a bit copy, as the CPU's
    if (cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * float_bytes(from), cudaMemcpyDeviceToDevice, stream) !=
        cudaSuccess)
      check_launch("cast");
    return;
  }
  cast_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(src, from, dst, to, n);
  check_launch("cast");
}

void copy_2d(const void* src, std::int64_t src_offset, std::int64_t src_stride, void* dst, std::int64_t dst_offset,
             std::int64_t dst_stride, std::int64_t rows, std::int64_t cols, int element_bytes, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const auto* s = static_cast<const char*>(src) + src_offset * element_bytes;
  auto* d = static_cast<char*>(dst) + dst_offset * element_bytes;
  // A 2-D memcpy when the rows are not contiguous; one linear copy when they are.
  const cudaError_t e = cudaMemcpy2DAsync(d, static_cast<std::size_t>(dst_stride * element_bytes), s,
                                          static_cast<std::size_t>(src_stride * element_bytes),
                                          static_cast<std::size_t>(cols * element_bytes), static_cast<std::size_t>(rows),
                                          cudaMemcpyDeviceToDevice, stream);
  if (e != cudaSuccess) check_launch("copy_2d");
}

void arange_mod(std::int32_t* out, std::int64_t n, std::int64_t start, std::int64_t period, cudaStream_t stream) {
  if (n == 0) return;
  arange_mod_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, n, start, period);
  check_launch("arange_mod");
}

void gelu_forward(Float t, const void* x, void* y, std::int64_t n, bool erf, cudaStream_t stream) {
  if (n == 0) return;
  if (erf) {
    TESSERA_CUDA_FLOAT_SWITCH(t, T, gelu_forward_kernel<T, true><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n));
  } else {
    TESSERA_CUDA_FLOAT_SWITCH(t, T, gelu_forward_kernel<T, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n));
  }
  check_launch("gelu_forward");
}

void gelu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t n, bool erf, cudaStream_t stream) {
  if (n == 0) return;
  if (erf) {
    TESSERA_CUDA_FLOAT_SWITCH(t, T, gelu_backward_kernel<T, true><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), n));
  } else {
    TESSERA_CUDA_FLOAT_SWITCH(t, T, gelu_backward_kernel<T, false><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), n));
  }
  check_launch("gelu_backward");
}

void squared_relu_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, squared_relu_forward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n));
  check_launch("squared_relu_forward");
}

void squared_relu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, squared_relu_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), n));
  check_launch("squared_relu_backward");
}

void tanh_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, tanh_forward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n));
  check_launch("tanh_forward");
}

void tanh_backward(Float t, const void* dy, const void* y, void* dx, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, tanh_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(dy), static_cast<const T*>(y), static_cast<T*>(dx), n));
  check_launch("tanh_backward");
}

void sigmoid_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            sigmoid_forward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                static_cast<const T*>(x), static_cast<T*>(y), n));
  check_launch("sigmoid_forward");
}

void sigmoid_backward(Float t, const void* dy, const void* y, void* dx, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            sigmoid_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
                                static_cast<const T*>(dy), static_cast<const T*>(y), static_cast<T*>(dx), n));
  check_launch("sigmoid_backward");
}

void dropout(Float t, const void* x, void* y, std::int64_t n, float p, std::uint64_t seed, std::int64_t offset,
             cudaStream_t stream) {
  if (n == 0) return;
  const dropout::Key key = dropout::key_of(seed);
  const std::uint32_t threshold = dropout::threshold_of(p);
  const float scale = dropout::scale_of(p);
  TESSERA_CUDA_FLOAT_SWITCH(t, T, dropout_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n, key, threshold, scale, offset));
  check_launch("dropout");
}

void add(Float t, const void* a, const void* b, void* out, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, add_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n));
  check_launch("add");
}

void axpy(Float t, float alpha, const void* x, void* y, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, axpy_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(alpha, static_cast<const T*>(x), static_cast<T*>(y), n));
  check_launch("axpy");
}

void add_bias(Float t, void* y, const void* bias, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N * C == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, add_bias_kernel<T><<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(static_cast<T*>(y), static_cast<const T*>(bias), N, C));
  check_launch("add_bias");
}

void scale(Float t, void* x, float s, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, scale_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), s, n));
  check_launch("scale");
}

void scale_rows(Float t, const void* x, const float* w, void* out, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N * C == 0) return;
  TESSERA_CUDA_FLOAT_SWITCH(t, T, scale_rows_kernel<T><<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), w, static_cast<T*>(out), N, C));
  check_launch("scale_rows");
}

void row_dot(Float t, const void* a, const void* b, float* out, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N == 0) return;  // C = 0 writes zeros
  TESSERA_CUDA_FLOAT_SWITCH(t, T, row_dot_kernel<T><<<grid_for(N * 32, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(a), static_cast<const T*>(b), out, N, C));
  check_launch("row_dot");
}

std::size_t column_sum_workspace_bytes(std::int64_t N, std::int64_t C) {
  const std::int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  return static_cast<std::size_t>((blocks < 1 ? 1 : blocks) * C) * sizeof(float);
}

void column_sum_accumulate(Float t, const void* dy, Float db_t, void* db, std::int64_t N, std::int64_t C,
                           void* workspace, cudaStream_t stream) {
  if (C == 0) return;
  const std::int64_t blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  auto* partial = static_cast<float*>(workspace);
  if (blocks == 0) return;  // no rows: nothing to add
  const dim3 grid(static_cast<unsigned>((C + kColLanes - 1) / kColLanes), static_cast<unsigned>(blocks));
  TESSERA_CUDA_FLOAT_SWITCH(t, T, column_partial_kernel<T><<<grid, dim3(kColLanes, kRowLanes), 0, stream>>>(static_cast<const T*>(dy), partial, N, C));
  check_launch("column_sum (partials)");
  TESSERA_CUDA_FLOAT_SWITCH(db_t, D, column_finish_kernel<D><<<grid_for(C, kThreads), kThreads, 0, stream>>>(partial, blocks, static_cast<D*>(db), C));
  check_launch("column_sum (finish)");
}

}  // namespace tessera::cuda
