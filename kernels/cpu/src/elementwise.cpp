#include "tessera/kernels/cpu/elementwise.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace tessera::cpu {

namespace {
// Below this, thread start-up costs more than the loop.
constexpr std::int64_t kParallelMin = 1 << 15;
}  // namespace

void add(const float* a, const float* b, float* out, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void axpy(float alpha, const float* x, float* y, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void add_bias(float* y, const float* bias, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > kParallelMin)
  for (std::int64_t i = 0; i < N; ++i) {
    float* row = y + i * C;
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) row[c] += bias[c];
  }
}

void scale(float* x, float s, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) x[i] *= s;
}

void scale_rows(const float* x, const float* w, float* out, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > kParallelMin)
  for (std::int64_t i = 0; i < N; ++i) {
    const float s = w[i];
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) out[i * C + c] = s * x[i * C + c];
  }
}

void row_dot(const float* a, const float* b, float* out, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > kParallelMin)
  for (std::int64_t i = 0; i < N; ++i) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t c = 0; c < C; ++c) s += a[i * C + c] * b[i * C + c];
    out[i] = s;
  }
}

void copy(const float* src, float* dst, std::int64_t n) {
  if (src == dst || n == 0) return;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (std::int64_t blk = 0; blk < (n + 4095) / 4096; ++blk) {
    const std::int64_t i0 = blk * 4096, len = (n - i0 < 4096) ? n - i0 : 4096;
    std::memmove(dst + i0, src + i0, static_cast<std::size_t>(len) * sizeof(float));
  }
}

namespace {
// Σ term(i) in double, the same bits whatever the thread count: fixed blocks, each summed by one
// thread (vectorised, in an order fixed at compile time), then the block sums added in order. An
// OpenMP reduction would add the threads' partial sums in the order they finish.
template <typename Term>
double blocked_sum(std::int64_t n, Term term) {
  constexpr std::int64_t kBlock = 1 << 14;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks <= 1) {  // most calls (a bias, a norm weight, a loss mask): no buffer, no threads
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = 0; i < n; ++i) s += term(i);
    return s;
  }
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t end = std::min(n, (b + 1) * kBlock);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = b * kBlock; i < end; ++i) s += term(i);
    partial[static_cast<std::size_t>(b)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}
}  // namespace

double sum(const float* x, std::int64_t n) {
  return blocked_sum(n, [x](std::int64_t i) { return static_cast<double>(x[i]); });
}

double sum_squares(const float* x, std::int64_t n) {
  return blocked_sum(n, [x](std::int64_t i) {
    const double v = x[i];
    return v * v;
  });
}

double count_zeros(const float* x, std::int64_t n) {
  return blocked_sum(n, [x](std::int64_t i) { return x[i] == 0.0f ? 1.0 : 0.0; });
}

double masked_sum(const float* values, const float* mask, std::int64_t n) {
  double s = 0.0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(values[i]) * mask[i];
  return s;
}

void copy_2d(const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride, std::int64_t rows,
             std::int64_t cols, std::size_t elem_size) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const std::size_t row_bytes = static_cast<std::size_t>(cols) * elem_size;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMin)
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(d + static_cast<std::size_t>(r * dst_stride) * elem_size,
                s + static_cast<std::size_t>(r * src_stride) * elem_size, row_bytes);
}

void arange_mod(std::int32_t* out, std::int64_t n, std::int64_t start, std::int64_t period) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<std::int32_t>((start + i) % period);
}

}  // namespace tessera::cpu
