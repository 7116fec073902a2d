#include <cmath>

#include "device_math.cuh"
#include "tessera/kernels/cuda/cross_entropy.hpp"

namespace tessera::cuda {

namespace {

// Row kernels run one block per row (grid-stride over rows); the block size grows with the row so a
// GPT-2 row (V = 50304) gives each of 1024 threads ~49 elements. 1024 threads cap registers at 64.
constexpr int kMaxRowThreads = 1024;
int row_threads(std::int64_t V) { return V >= 16384 ? 1024 : V >= 2048 ? 512 : 128; }

constexpr int kElementThreads = 256;

// Calls use(j, x[j]) for this thread's elements j = threadIdx.x + k·blockDim.x of a row of n, in
// ascending j, loading kUnroll of them before using any: one load in flight per thread is too few to
// keep HBM busy. use may overwrite x[j] (in-place passes): each group's loads precede its stores.
constexpr int kUnroll = 4;
template <class Use>
__device__ __forceinline__ void for_row_elements(const float* x, std::int64_t n, Use&& use) {
  const std::int64_t step = blockDim.x;
  std::int64_t j = threadIdx.x;
  for (; j + (kUnroll - 1) * step < n; j += kUnroll * step) {
    float v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) v[k] = x[j + k * step];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) use(j + k * step, v[k]);
  }
  for (; j < n; j += step) use(j, x[j]);
}

struct RowStats {
  float max;   // max_j x[j]
  double sum;  // Σ_j exp(x[j] − max)
};

// The row's max and Σ exp(x − max) for every thread of the block, in one read of the row. Each
// thread keeps a running max and the sum of its terms relative to it (float exps, as the CPU's,
// summed in double), rescaled in double when the max grows; the block then rescales the threads'
// sums to the row max and adds them in the fixed order of block_sum.
__device__ __forceinline__ RowStats row_softmax_stats(const float* x, std::int64_t V, float* max_scratch,
                                                      double* sum_scratch) {
  float m = -INFINITY;
  double s = 0.0;
  for_row_elements(x, V, [&](std::int64_t, float v) {
    if (v > m) {
      s = s * exp(static_cast<double>(m) - static_cast<double>(v)) + 1.0;  // the new term is exp(0) = 1
      m = v;
    } else if (v != -INFINITY) {  // exp(−∞) adds nothing, and −∞ − (−∞) would make it NaN; NaN propagates
      s += expf(v - m);
    }
  });
  const float row_max = block_max(m, max_scratch);
  // A thread that saw no finite value has s = 0 (and m = −∞, whose rescale could be NaN).
  const double rescaled = s == 0.0 ? 0.0 : s * exp(static_cast<double>(m) - static_cast<double>(row_max));
  return {row_max, block_sum(rescaled, sum_scratch)};
}

__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_cross_entropy_kernel(float* logits, const std::int32_t* targets, const float* mask, float* losses,
                                 std::int64_t N, std::int64_t V, bool compute_grad, float grad_scale) {
  __shared__ float max_scratch[32];
  __shared__ double sum_scratch[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* x = logits + n * V;
    const std::int64_t target = targets[n];
    const bool valid = target >= 0 && target < V;
    // Read before the row is overwritten (row_softmax_stats synchronises the block first).
    const float target_logit = threadIdx.x == 0 && valid ? x[target] : NAN;
    const RowStats st = row_softmax_stats(x, V, max_scratch, sum_scratch);
    if (threadIdx.x == 0)
      losses[n] = static_cast<float>(static_cast<double>(st.max) + log(st.sum) - static_cast<double>(target_logit));
    if (!compute_grad) continue;
    const float w = grad_scale * (mask ? mask[n] : 1.0f);
    const float scale = static_cast<float>(static_cast<double>(w) / st.sum);
    // As the CPU: exp rounded to f32, times the scale (no fused multiply-add), minus w at the target.
    for_row_elements(x, V, [&](std::int64_t j, float v) {
      float g = __fmul_rn(expf(v - st.max), scale);
      if (j == target) g -= w;
      x[j] = g;
    });
  }
}

__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_shard_stats_kernel(float* logits, const std::int32_t* targets, std::int64_t first_id,
                                     float* row_max, float* sum_exp, float* target_logit, std::int64_t N,
                                     std::int64_t V, bool keep_exp) {
  __shared__ float max_scratch[32];
  __shared__ double sum_scratch[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* x = logits + n * V;
    const std::int64_t t = static_cast<std::int64_t>(targets[n]) - first_id;
    if (threadIdx.x == 0) target_logit[n] = t >= 0 && t < V ? x[t] : 0.0f;  // before the row is overwritten
    const RowStats st = row_softmax_stats(x, V, max_scratch, sum_scratch);
    if (threadIdx.x == 0) {
      row_max[n] = st.max;
      sum_exp[n] = static_cast<float>(st.sum);
    }
    if (keep_exp) for_row_elements(x, V, [&](std::int64_t j, float v) { x[j] = expf(v - st.max); });
  }
}

__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_shard_grad_kernel(float* exp_logits, const std::int32_t* targets, std::int64_t first_id,
                                    const float* mask, const float* row_max, const float* global_max,
                                    const float* global_sum, float grad_scale, std::int64_t N, std::int64_t V) {
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    float* x = exp_logits + n * V;
    const float w = grad_scale * (mask ? mask[n] : 1.0f);
    // exp(x − M)/S = exp(x − row_max)·exp(row_max − M)/S: one factor per row, in double as the CPU.
    const float scale = static_cast<float>(static_cast<double>(w) *
                                           exp(static_cast<double>(row_max[n]) - static_cast<double>(global_max[n])) /
                                           static_cast<double>(global_sum[n]));
    const std::int64_t t = static_cast<std::int64_t>(targets[n]) - first_id;
    for_row_elements(x, V, [&](std::int64_t j, float v) {
      float g = __fmul_rn(v, scale);
      if (j == t) g -= w;
      x[j] = g;
    });
  }
}

__global__ void cross_entropy_shard_rescale_kernel(const float* row_max, const float* sum_exp, const float* global_max,
                                                   float* sum_at_global, std::int64_t N) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < N;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    sum_at_global[i] = static_cast<float>(static_cast<double>(sum_exp[i]) *
                                          exp(static_cast<double>(row_max[i]) - static_cast<double>(global_max[i])));
}

__global__ void cross_entropy_shard_loss_kernel(const float* global_max, const float* global_sum,
                                                const float* target_logit, float* losses, std::int64_t N) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < N;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    losses[i] = static_cast<float>(static_cast<double>(global_max[i]) + log(static_cast<double>(global_sum[i])) -
                                   static_cast<double>(target_logit[i]));
}

// out may alias x: pass 1 only reads, and in pass 2 each thread reads its elements before writing them.
__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_kernel(const float* x, float* out, std::int64_t N, std::int64_t C) {
  __shared__ float max_scratch[32];
  __shared__ double sum_scratch[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const float* xr = x + n * C;
    float* outr = out + n * C;
    const RowStats st = row_softmax_stats(xr, C, max_scratch, sum_scratch);
    const float inv = static_cast<float>(1.0 / st.sum);
    for_row_elements(xr, C, [&](std::int64_t j, float v) { outr[j] = __fmul_rn(expf(v - st.max), inv); });
  }
}

}  // namespace

void softmax_cross_entropy(float* logits, const std::int32_t* targets, const float* mask, float* losses,
                           std::int64_t N, std::int64_t V, bool compute_grad, float grad_scale, cudaStream_t stream) {
  if (N == 0 || V == 0) return;
  softmax_cross_entropy_kernel<<<grid_for(N, 1), row_threads(V), 0, stream>>>(logits, targets, mask, losses, N, V,
                                                                               compute_grad, grad_scale);
  check_launch("softmax_cross_entropy");
}

void cross_entropy_shard_stats(float* logits, const std::int32_t* targets, std::int64_t first_id, float* row_max,
                               float* sum_exp, float* target_logit, std::int64_t N, std::int64_t V, bool keep_exp,
                               cudaStream_t stream) {
  if (N == 0 || V == 0) return;
  cross_entropy_shard_stats_kernel<<<grid_for(N, 1), row_threads(V), 0, stream>>>(
      logits, targets, first_id, row_max, sum_exp, target_logit, N, V, keep_exp);
  check_launch("cross_entropy_shard_stats");
}

void cross_entropy_shard_grad(float* exp_logits, const std::int32_t* targets, std::int64_t first_id, const float* mask,
                              const float* row_max, const float* global_max, const float* global_sum,
                              float grad_scale, std::int64_t N, std::int64_t V, cudaStream_t stream) {
  if (N == 0 || V == 0) return;
  cross_entropy_shard_grad_kernel<<<grid_for(N, 1), row_threads(V), 0, stream>>>(
      exp_logits, targets, first_id, mask, row_max, global_max, global_sum, grad_scale, N, V);
  check_launch("cross_entropy_shard_grad");
}

void cross_entropy_shard_rescale(const float* row_max, const float* sum_exp, const float* global_max,
                                 float* sum_at_global, std::int64_t N, cudaStream_t stream) {
  if (N == 0) return;
  cross_entropy_shard_rescale_kernel<<<grid_for(N, kElementThreads), kElementThreads, 0, stream>>>(
      row_max, sum_exp, global_max, sum_at_global, N);
  check_launch("cross_entropy_shard_rescale");
}

void cross_entropy_shard_loss(const float* global_max, const float* global_sum, const float* target_logit,
                              float* losses, std::int64_t N, cudaStream_t stream) {
  if (N == 0) return;
  cross_entropy_shard_loss_kernel<<<grid_for(N, kElementThreads), kElementThreads, 0, stream>>>(
      global_max, global_sum, target_logit, losses, N);
  check_launch("cross_entropy_shard_loss");
}

void softmax(const float* x, float* out, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  softmax_kernel<<<grid_for(N, 1), row_threads(C), 0, stream>>>(x, out, N, C);
  check_launch("softmax");
}

}  // namespace tessera::cuda
