// Conversions between f32 and the 16-bit float types (bf16, f16; stored as their bits), round to
// nearest even (tessera/half.hpp's scalar rules, vectorised): how the CPU backend runs ops on
// bf16/f16 tensors through its f32 kernels, and the cast op.
#pragma once
#include <cstdint>

namespace tessera::cpu {

enum class Half { bf16, f16 };

void half_to_f32(const std::uint16_t* in, Half type, float* out, std::int64_t n);
void f32_to_half(const float* in, Half type, std::uint16_t* out, std::int64_t n);

}  // namespace tessera::cpu
