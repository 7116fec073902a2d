// RMSNorm, SwiGLU and RoPE on the GPU, the contracts of kernels/cpu/llama.hpp: buffers in the
// compute type t (rstd f32, dw in its own type, accumulated), math in f32; RoPE's angles in double,
// as the CPU. The row reductions use a fixed shuffle order and dw sums rows in order per column (no
// atomics), so equal inputs give bitwise-equal outputs.
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"
#include "tessera/gated_linear_unit.hpp"
#include "tessera/rope_frequency.hpp"

namespace tessera::cuda {

void rms_norm_forward(Float t, const void* x, const void* w, float eps, void* y, float* rstd, std::int64_t N,
                      std::int64_t C, cudaStream_t stream);
void rms_norm_backward(Float t, const void* dy, const void* x, const void* w, const float* rstd, void* dx, Float dw_t,
                       void* dw, std::int64_t N, std::int64_t C, cudaStream_t stream);

void swiglu_forward(Float t, const void* x, void* y, std::int64_t N, std::int64_t F, const GatedLinearUnit& g,
                    cudaStream_t stream);
void swiglu_backward(Float t, const void* dy, const void* x, void* dx, std::int64_t N, std::int64_t F,
                     const GatedLinearUnit& g, cudaStream_t stream);

// scaling_factor > 0: Llama 3.1's frequencies; positions divided by `interpolation` (1: none); yarn
// (factor > 0): YaRN's frequencies and magnitude (tessera/rope_frequency.hpp).
void rope(Float t, void* x, std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t D, std::int64_t W,
          std::int64_t dim, double base, double scaling_factor, double interpolation, const RopeYarn& yarn,
          bool interleaved, std::int64_t position_offset, bool inverse, cudaStream_t stream);

}  // namespace tessera::cuda
