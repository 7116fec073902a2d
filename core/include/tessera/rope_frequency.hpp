// Rotary position embedding's frequency of channel pair i of `dim` rotated channels:
// base^(−2i/dim) — and with Llama 3.1's scaling (Megatron-Core's apply_scaling under
// --use-rope-scaling; factor > 0) the long wavelengths stretched: with wavelength λ = 2π/f and
// Megatron's fixed low_freq_factor 1, high_freq_factor 4 and original context 8192,
//   λ < 8192/4:  f;   λ > 8192/1:  f/factor;
//   between:     (1 − s)·f/factor + s·f,  s = (8192/λ − 1) / (4 − 1).
// rope_angle below divides positions by Megatron-Core's --rotary-seq-len-interpolation-factor.
// YaRN (RopeYarn, Megatron-Core's YarnRotaryEmbedding, Hugging Face's rope_type "yarn") blends each
// frequency f between f (extrapolation) and f/factor (interpolation) by a linear ramp over the pair
// index between the correction dims of beta_fast and beta_slow rotations in the original context,
// and scales cos and sin by mscale (rope_magnitude).
// Header-only so that the CPU kernel and the CUDA kernel (host and device) compute the same.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/host_device.hpp"

namespace tessera {

struct RopeScalingConstants {
  static constexpr double kLowFreqFactor = 1.0, kHighFreqFactor = 4.0, kOriginalContext = 8192.0;
};

// YaRN's settings (Megatron-Core's yarn_* keys); factor 0: off.
struct RopeYarn {
  double factor = 0.0;               // yarn_rotary_scaling_factor (Hugging Face's "factor")
  double original_context = 4096.0;  // yarn_original_max_position_embeddings
  double beta_fast = 32.0, beta_slow = 1.0;
  double mscale = 1.0, mscale_all_dim = 0.0;
  bool round_to_int = true;  // yarn_correction_range_round_to_int (Hugging Face's "truncate")
};

// YaRN's 0.1·m·ln(s) + 1 (1 for s ≤ 1).
inline TESSERA_HOST_DEVICE double yarn_get_mscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

// The pair index at which `rotations` full turns fit the original context.
inline TESSERA_HOST_DEVICE double yarn_correction_dim(double rotations, std::int64_t dim, double base, double context) {
  return static_cast<double>(dim) * log(context / (rotations * 2.0 * 3.14159265358979323846)) / (2.0 * log(base));
}

// The factor cos and sin are scaled by: YaRN's mscale ratio, else 1.
inline TESSERA_HOST_DEVICE double rope_magnitude(const RopeYarn& y) {
  if (!(y.factor > 0.0)) return 1.0;
  return yarn_get_mscale(y.factor, y.mscale) / yarn_get_mscale(y.factor, y.mscale_all_dim);
}

inline TESSERA_HOST_DEVICE double yarn_inv_freq(double f, std::int64_t i, std::int64_t dim, double base,
                                                const RopeYarn& y) {
  double low = yarn_correction_dim(y.beta_fast, dim, base, y.original_context);
  double high = yarn_correction_dim(y.beta_slow, dim, base, y.original_context);
  if (y.round_to_int) {
    low = floor(low);
    high = ceil(high);
  }
  low = low > 0.0 ? low : 0.0;
  high = high < static_cast<double>(dim - 1) ? high : static_cast<double>(dim - 1);
  if (low == high) high += 0.001;
  double ramp = (static_cast<double>(i) - low) / (high - low);  // 0: extrapolate (f), 1: interpolate (f/factor)
  ramp = ramp < 0.0 ? 0.0 : ramp > 1.0 ? 1.0 : ramp;
  return f / y.factor * ramp + f * (1.0 - ramp);
}

inline TESSERA_HOST_DEVICE double rope_inv_freq(std::int64_t i, std::int64_t dim, double base, double scaling_factor,
                                                const RopeYarn& yarn = {}) {
  const double f = 1.0 / pow(base, static_cast<double>(2 * i) / static_cast<double>(dim));
  if (yarn.factor > 0.0) return yarn_inv_freq(f, i, dim, base, yarn);
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
                                             double scaling_factor, double interpolation, const RopeYarn& yarn = {}) {
  return static_cast<double>(position) / interpolation * rope_inv_freq(i, dim, base, scaling_factor, yarn);
}

}  // namespace tessera
