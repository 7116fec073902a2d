#include "tessera/kernels/cpu/convert.hpp"

#include "tessera/half.hpp"

namespace tessera::cpu {

namespace {
constexpr std::int64_t kParallelFrom = 1 << 16;  // elements; below, a thread team costs more than it saves
}

void half_to_f32(const std::uint16_t* in, Half type, float* out, std::int64_t n) {
  if (type == Half::bf16) {
#pragma omp parallel for simd schedule(static) if (n > kParallelFrom)
    for (std::int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelFrom)
    for (std::int64_t i = 0; i < n; ++i) out[i] = f16_to_float(in[i]);
  }
}

void f32_to_half(const float* in, Half type, std::uint16_t* out, std::int64_t n) {
  if (type == Half::bf16) {
#pragma omp parallel for simd schedule(static) if (n > kParallelFrom)
    for (std::int64_t i = 0; i < n; ++i) out[i] = float_to_bf16(in[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelFrom)
    for (std::int64_t i = 0; i < n; ++i) out[i] = float_to_f16(in[i]);
  }
}

}  // namespace tessera::cpu
