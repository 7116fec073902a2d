// The mask is tessera/dropout_mask.hpp's: a pure function of (seed, i), shared with the CUDA
// kernels; every element is independent, so the result does not depend on the thread count.
#include "tessera/kernels/cpu/dropout.hpp"

#include "tessera/dropout_mask.hpp"

namespace tessera::cpu {

void dropout_apply(const float* x, float* y, std::int64_t n, float p, std::uint64_t seed, std::int64_t offset) {
  const dropout::Key key = dropout::key_of(seed);
  const std::uint32_t threshold = dropout::threshold_of(p);
  const float scale = dropout::scale_of(p);
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (std::int64_t i = 0; i < n; ++i) y[i] = dropout::hash24(offset + i, key) >= threshold ? x[i] * scale : 0.0f;
}

}  // namespace tessera::cpu
