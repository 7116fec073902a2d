// Rotary position embedding's frequency of channel pair i of `dim` rotated channels:
// base^(−2i/dim) — and with Llama 3.1's scaling (Megatron-Core's apply_scaling under
// --use-rope-scaling; factor > 0) the long wavelengths stretched: with wavelength λ = 2π/f and
// Megatron's fixed low_freq_factor 1, high_freq_factor 4 and original context 8192,
//   λ < 8192/4:  f;   λ > 8192/1:  f/factor;
//   between:     (1 − s)·f/factor + s·f,  s = (8192/λ − 1) / (4 − 1).
// rope_angle below divides positions by Megatron-Core's --rotary-seq-len-interpolation-factor.
// Header-only so that the CPU kernel and the CUDA kernel (host and device) compute the same.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/host_device.hpp"

namespace tessera {

struct RopeScalingConstants {
  static constexpr double kLowFreqFactor = 1.0, kHighFreqFactor = 4.0, kOriginalContext = 8192.0;
};

inline TESSERA_HOST_DEVICE double rope_inv_freq(std::int64_t i, std::int64_t dim, double base, double scaling_factor) {
  const double f = 1.0 / pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  if (!(scaling_factor > 0.0)) return f;
  using C = RopeScalingConstants;
  const double wavelength = 2.0 * 3.14159265358979323846 / f;
  if (wavelength < C::kOriginalContext / C::kHighFreqFactor) return f;
  if (wavelength > C::kOriginalContext / C::kLowFreqFactor) return f / scaling_factor;
  const double s = (C::kOriginalContext / wavelength - C::kLowFreqFactor) / (C::kHighFreqFactor - C::kLowFreqFactor);
  return (1.0 - s) * f / scaling_factor + s * f;
}

// The rotation angle of channel pair i at `position`, Megatron-Core's RotaryEmbedding: the position
// divided by the sequence-length interpolation factor (1: none), times the frequency.
inline TESSERA_HOST_DEVICE double rope_angle(std::int64_t position, std::int64_t i, std::int64_t dim, double base,
                                             double scaling_factor, double interpolation) {
  return static_cast<double>(position) / interpolation * rope_inv_freq(i, dim, base, scaling_factor);
}

}  // namespace tessera
