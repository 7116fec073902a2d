#include "tessera/kernels/cpu/embedding.hpp"

#include <omp.h>

#include <algorithm>

namespace tessera::cpu {

void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t N,
                       std::int64_t C, bool accumulate) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    const float* src = table + static_cast<std::int64_t>(ids[i]) * C;
    float* dst = out + i * C;
    if (accumulate) {
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) dst[c] += src[c];
    } else {
      std::copy(src, src + C, dst);
    }
  }
}

void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable, std::int64_t N,
                        std::int64_t C) {
  // Repeated ids make rows collide, so threads split the columns instead of the rows.
#pragma omp parallel if (N * C > (1 << 15))
  {
    const std::int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    // Column ranges rounded to 16 floats (a cache line) so threads never share one.
    const std::int64_t chunk = ((C + nt - 1) / nt + 15) / 16 * 16;
    const std::int64_t c0 = std::min(C, t * chunk), c1 = std::min(C, c0 + chunk);
    for (std::int64_t i = 0; i < N; ++i) {
      const float* src = dout + i * C;
      float* dst = dtable + static_cast<std::int64_t>(ids[i]) * C;
#pragma omp simd
      for (std::int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

void embedding_shard_forward(const std::int32_t* ids, const float* table, std::int64_t first_id,
                             std::int64_t rows, float* out, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t r = ids[i] - first_id;
    float* dst = out + i * C;
    if (r >= 0 && r < rows)
      std::copy(table + r * C, table + (r + 1) * C, dst);
    else
      std::fill(dst, dst + C, 0.0f);
  }
}

void embedding_shard_backward(const std::int32_t* ids, const float* dout, std::int64_t first_id,
                              std::int64_t rows, float* dtable, std::int64_t N, std::int64_t C) {
  // As embedding_backward: threads split the columns, since repeated ids make rows collide.
#pragma omp parallel if (N * C > (1 << 15))
  {
    const std::int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const std::int64_t chunk = ((C + nt - 1) / nt + 15) / 16 * 16;
    const std::int64_t c0 = std::min(C, t * chunk), c1 = std::min(C, c0 + chunk);
    for (std::int64_t i = 0; i < N; ++i) {
      const std::int64_t r = ids[i] - first_id;
      if (r < 0 || r >= rows) continue;
      const float* src = dout + i * C;
      float* dst = dtable + r * C;
#pragma omp simd
      for (std::int64_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace tessera::cpu
