// The 16-bit float types of mixed precision, stored as their bits (std::uint16_t): bfloat16 (f32's
// exponent, 8 bits of mantissa; what Megatron-LM trains in with --bf16) and IEEE half (f16, --fp16).
// Conversions from f32 round to nearest even, as PyTorch's and the hardware's do; NaN stays NaN
// (quiet) and infinities stay infinite. Math on them is done in f32.
#pragma once
#include <cstdint>
#include <cstring>

#include "tessera/dtype.hpp"

namespace tessera {

// f32, bf16 and f16: the dtypes a model's tensors may compute in.
constexpr bool is_float_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

inline float bf16_to_float(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even (carries into the exponent: may give ±inf)
  return static_cast<std::uint16_t>(u >> 16);
}

inline float f16_to_float(std::uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<float>(v);
}

inline std::uint16_t float_to_f16(float f) {
  const _Float16 v = static_cast<_Float16>(f);  // round to nearest even; overflow gives ±inf
  std::uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}

// f32 rounded to the precision of `t` (f32: unchanged): what storing then loading gives.
inline float round_to(DType t, float f) {
  if (t == DType::bf16) return bf16_to_float(float_to_bf16(f));
  if (t == DType::f16) return f16_to_float(float_to_f16(f));
  return f;
}

}  // namespace tessera
