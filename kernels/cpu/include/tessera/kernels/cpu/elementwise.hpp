// Elementwise maps and reductions over flat arrays of n floats. Outputs may alias inputs.
// Sums accumulate in double (gradient norms over 10⁸ parameters need it).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::cpu {

void add(const float* a, const float* b, float* out, std::int64_t n);   // out = a + b
void axpy(float alpha, const float* x, float* y, std::int64_t n);       // y += alpha·x
void add_bias(float* y, const float* bias, std::int64_t N, std::int64_t C);  // y[n,:] += bias
void scale(float* x, float s, std::int64_t n);                          // x *= s
void scale_rows(const float* x, const float* w, float* out, std::int64_t N, std::int64_t C);  // out[n,:] = w[n]·x[n,:]
void row_dot(const float* a, const float* b, float* out, std::int64_t N, std::int64_t C);  // out[n] = a[n,:]·b[n,:]
void copy(const float* src, float* dst, std::int64_t n);
// Sums below give the same bits whatever the thread count (fixed blocks, added in order).
double sum(const float* x, std::int64_t n);
double sum_squares(const float* x, std::int64_t n);
double count_zeros(const float* x, std::int64_t n);  // elements equal to ±0
// Σ values[i]·mask[i] in double, in index order (the loss of a microbatch: the same bits as a plain
// loop, whatever the thread count).
double masked_sum(const float* values, const float* mask, std::int64_t n);
// rows × cols elements of elem_size bytes: dst[r·dst_stride + c] = src[r·src_stride + c] (strides in
// elements; the blocks must not overlap).
void copy_2d(const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride, std::int64_t rows,
             std::int64_t cols, std::size_t elem_size);
// out[i] = (start + i) mod period: position ids of consecutive rows of [B, T] sequences.
void arange_mod(std::int32_t* out, std::int64_t n, std::int64_t start, std::int64_t period);

}  // namespace tessera::cpu
