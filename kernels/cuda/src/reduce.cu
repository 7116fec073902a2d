#include "device_math.cuh"
#include "tessera/kernels/cuda/reduce.hpp"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

int blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads * 4 - 1) / (kThreads * 4);
  return static_cast<int>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

// mode 0: x, 1: x², 2: x·mask, 3: 1 where x is ±0.
template <class T, int kMode>
__global__ void partial_kernel(const T* x, const float* mask, std::int64_t n, double* partial) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double v = to_f32(x[i]);
    if constexpr (kMode == 0) s += v;
    else if constexpr (kMode == 1) s += v * v;
    else if constexpr (kMode == 2) s += v * static_cast<double>(mask[i]);
    else s += v == 0.0 ? 1.0 : 0.0;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void finish_kernel(const double* partial, int blocks, double* out, bool accumulate) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = accumulate ? *out + s : s;
}

template <class T, int kMode>
void run(const T* x, const float* mask, std::int64_t n, double* out, bool accumulate, void* workspace,
         cudaStream_t stream) {
  const int blocks = blocks_for(n);
  auto* partial = static_cast<double*>(workspace);
  partial_kernel<T, kMode><<<blocks, kThreads, 0, stream>>>(x, mask, n, partial);
  check_launch("sum (partials)");
  finish_kernel<<<1, kThreads, 0, stream>>>(partial, blocks, out, accumulate);
  check_launch("sum (finish)");
}

}  // namespace

std::size_t reduce_workspace_bytes(std::int64_t n) { return static_cast<std::size_t>(blocks_for(n)) * sizeof(double); }

void sum(Float t, const void* x, std::int64_t n, bool squares, double* out, bool accumulate, void* workspace,
         cudaStream_t stream) {
  TESSERA_CUDA_FLOAT_SWITCH(t, T,
                            if (squares) run<T, 1>(static_cast<const T*>(x), nullptr, n, out, accumulate, workspace, stream);
                            else run<T, 0>(static_cast<const T*>(x), nullptr, n, out, accumulate, workspace, stream));
}

void count_zeros(const float* x, std::int64_t n, double* out, bool accumulate, void* workspace, cudaStream_t stream) {
  run<float, 3>(x, nullptr, n, out, accumulate, workspace, stream);
}

void masked_sum(const float* values, const float* mask, std::int64_t n, double* out, bool accumulate, void* workspace,
                cudaStream_t stream) {
  run<float, 2>(values, mask, n, out, accumulate, workspace, stream);
}

}  // namespace tessera::cuda
