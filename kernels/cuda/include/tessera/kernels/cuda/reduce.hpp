// Reductions into one double on the device (ops::sum and friends): a fixed grid of partial sums in
// double, then one block adding them in index order — the same inputs always give the same bits.
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

std::size_t reduce_workspace_bytes(std::int64_t n);
// out (one double) = Σ x (or += with accumulate); squares: Σ x².
void sum(Float t, const void* x, std::int64_t n, bool squares, double* out, bool accumulate, void* workspace,
         cudaStream_t stream);
// out = the number of elements of the f32 x equal to ±0.
void count_zeros(const float* x, std::int64_t n, double* out, bool accumulate, void* workspace, cudaStream_t stream);
// out = Σ values·mask, both f32.
void masked_sum(const float* values, const float* mask, std::int64_t n, double* out, bool accumulate, void* workspace,
                cudaStream_t stream);

}  // namespace tessera::cuda
