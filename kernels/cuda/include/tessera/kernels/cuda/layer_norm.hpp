// LayerNorm over the last dim C on the GPU, the contract of kernels/cpu/layer_norm.hpp:
//   x, y, dy, dx [N,C] and w, b [C] in the compute type t;  mean, rstd [N] f32;
//   dw, db [C] in their own types (f32 or t), accumulated (+=).
// Statistics and math in f32; the row reductions and the column sums of dw/db run in a fixed order
// (no atomics), so equal inputs give bitwise-equal outputs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

// y = (x − mean)·rstd·w + b, mean and the centred (biased) variance in two passes over each row.
void layer_norm_forward(Float t, const void* x, const void* w, const void* b, float eps, void* y, float* mean,
                        float* rstd, std::int64_t N, std::int64_t C, cudaStream_t stream);

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w (overwritten); dw += Σ_rows dy·x̂, db += Σ_rows dy
// through per-chunk partial sums in `workspace` (layer_norm_backward_workspace_bytes(N, C) bytes).
std::size_t layer_norm_backward_workspace_bytes(std::int64_t N, std::int64_t C);
void layer_norm_backward(Float t, const void* dy, const void* x, const void* w, const float* mean, const float* rstd,
                         void* dx, Float dw_t, void* dw, Float db_t, void* db, std::int64_t N, std::int64_t C,
                         void* workspace, cudaStream_t stream);

}  // namespace tessera::cuda
