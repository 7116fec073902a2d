// Elementwise CUDA kernels: fills, copies and casts, activations, dropout, sums of tensors. n counts
// elements; float buffers are in the Float type given (math in f32, stores rounded to nearest even).
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

// Any buffer of n elements of `element_bytes` (1, 2, 4 or 8) set to the bit pattern of `value`
// converted to type t (floats) — fill_bytes_pattern is for integer and zero fills.
void fill(Float t, void* x, std::int64_t n, float value, cudaStream_t stream);
void fill_pattern(void* x, std::int64_t n, int element_bytes, std::uint64_t pattern, cudaStream_t stream);
void cast(Float from, const void* src, Float to, void* dst, std::int64_t n, cudaStream_t stream);
// dst[dst_offset + r·dst_stride + c] = src[src_offset + r·src_stride + c], bytes per element given.
void copy_2d(const void* src, std::int64_t src_offset, std::int64_t src_stride, void* dst, std::int64_t dst_offset,
             std::int64_t dst_stride, std::int64_t rows, std::int64_t cols, int element_bytes, cudaStream_t stream);
void arange_mod(std::int32_t* out, std::int64_t n, std::int64_t start, std::int64_t period, cudaStream_t stream);

// erf: the exact GELU x·Φ(x); else the tanh form.
void gelu_forward(Float t, const void* x, void* y, std::int64_t n, bool erf, cudaStream_t stream);
void gelu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t n, bool erf, cudaStream_t stream);
// Squared ReLU: y = max(x, 0)², dx = dy·2·max(x, 0) (dx may alias dy).
void squared_relu_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream);
void squared_relu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t n, cudaStream_t stream);
// y = tanh(x); dx = dy·(1 − y²) from the output y (dx may alias dy).
void tanh_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream);
void tanh_backward(Float t, const void* dy, const void* y, void* dx, std::int64_t n, cudaStream_t stream);
// y = 1/(1 + e^{−x}); dx = dy·y·(1 − y) from the output y (dx may alias dy).
void sigmoid_forward(Float t, const void* x, void* y, std::int64_t n, cudaStream_t stream);
void sigmoid_backward(Float t, const void* dy, const void* y, void* dx, std::int64_t n, cudaStream_t stream);
// The CPU's counter-based mask (kernels/cpu/src/dropout.cpp) bit for bit.
void dropout(Float t, const void* x, void* y, std::int64_t n, float p, std::uint64_t seed, std::int64_t offset,
             cudaStream_t stream);

void add(Float t, const void* a, const void* b, void* out, std::int64_t n, cudaStream_t stream);
void axpy(Float t, float alpha, const void* x, void* y, std::int64_t n, cudaStream_t stream);
// y[N,C] += bias[C] on every row.
void add_bias(Float t, void* y, const void* bias, std::int64_t N, std::int64_t C, cudaStream_t stream);
void scale(Float t, void* x, float s, std::int64_t n, cudaStream_t stream);
// out[n,:] = w[n]·x[n,:] (out may alias x); row_dot: out[n] = Σ_c a[n,c]·b[n,c] in f32. w, row_dot's out f32.
void scale_rows(Float t, const void* x, const float* w, void* out, std::int64_t N, std::int64_t C, cudaStream_t stream);
void row_dot(Float t, const void* a, const void* b, float* out, std::int64_t N, std::int64_t C, cudaStream_t stream);

// db[C] (type db_t) += Σ_rows dy[N,C] (type t), in a fixed order: per-block partial sums in f32 in
// `workspace` (column_sum_workspace_bytes), then one pass over the partials.
std::size_t column_sum_workspace_bytes(std::int64_t N, std::int64_t C);
void column_sum_accumulate(Float t, const void* dy, Float db_t, void* db, std::int64_t N, std::int64_t C,
                           void* workspace, cudaStream_t stream);

}  // namespace tessera::cuda
