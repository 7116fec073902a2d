// The ops of Llama-style blocks (docs/llama.md), the contracts of core's ops.hpp on plain pointers:
//   RMSNorm   x, y, dy, dx [N,C];  w, dw [C];  rstd [N]
//             y = w·x·rstd, rstd = 1/√(mean(x²) + eps); backward: dx overwritten, dw accumulated (+=).
//   SwiGLU    x, dx [N,2F] (each row [x0 | x1]);  y, dy [N,F];  y = silu(x0)·x1.
//   RoPE      x [B,T,W] in place: H heads of D channels at columns [h·D, (h+1)·D), the first `dim`
//             channels of each rotated by (position_offset + t)·base^(−2i/dim); inverse: by −angle.
#pragma once
#include <cstdint>

#include "tessera/gated_linear_unit.hpp"
#include "tessera/rope_frequency.hpp"

namespace tessera::cpu {

void rms_norm_forward(const float* x, const float* w, float eps, float* y, float* rstd, std::int64_t N,
                      std::int64_t C);
void rms_norm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                       std::int64_t N, std::int64_t C);

void swiglu_forward(const float* x, float* y, std::int64_t N, std::int64_t F, const GatedLinearUnit& g);
void swiglu_backward(const float* dy, const float* x, float* dx, std::int64_t N, std::int64_t F,
                     const GatedLinearUnit& g);

// scaling_factor > 0: Llama 3.1's frequencies; positions divided by `interpolation` (1: none); yarn
// (factor > 0): YaRN's frequencies and magnitude (tessera/rope_frequency.hpp).
void rope(float* x, std::int64_t B, std::int64_t T, std::int64_t H, std::int64_t D, std::int64_t W, std::int64_t dim,
          double base, double scaling_factor, double interpolation, const RopeYarn& yarn, bool interleaved,
          std::int64_t position_offset, bool inverse);

}  // namespace tessera::cpu
