#include "tessera/kernels/cpu/embedding.hpp"

#include <omp.h>

#include <algorithm>

#include "tessera/kernels/cpu/convert.hpp"

namespace tessera::cpu {

namespace {

// Copies (or adds) table row `row` into dst as f32: directly from an f32 table, converting just
// that row from a bf16/f16 one (so a step never converts a whole 16-bit table).
struct F32Rows {
  const float* table;
  void load(std::int64_t row, std::int64_t C, float* dst, bool accumulate) const {
    const float* src = table + row * C;
    if (!accumulate) return (void)std::copy(src, src + C, dst);
#pragma omp simd
    for (std::int64_t c = 0; c < C; ++c) dst[c] += src[c];
  }
};
struct HalfRows {
  const std::uint16_t* table;
  Half type;
  void load(std::int64_t row, std::int64_t C, float* dst, bool accumulate) const {
    if (!accumulate) return half_to_f32(table + row * C, type, dst, C);
    constexpr std::int64_t kBlock = 256;
    float tmp[kBlock];
    for (std::int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const std::int64_t n = std::min(kBlock, C - c0);
      half_to_f32(table + row * C + c0, type, tmp, n);
#pragma omp simd
      for (std::int64_t c = 0; c < n; ++c) dst[c0 + c] += tmp[c];
    }
  }
};

template <class Rows>
void gather_rows(const std::int32_t* ids, const Rows& rows, float* out, std::int64_t N, std::int64_t C,
                 bool accumulate) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) rows.load(ids[i], C, out + i * C, accumulate);
}

template <class Rows>
void gather_shard_rows(const std::int32_t* ids, const Rows& table, std::int64_t first_id, std::int64_t rows,
                       float* out, std::int64_t N, std::int64_t C) {
#pragma omp parallel for schedule(static) if (N * C > (1 << 15))
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t r = ids[i] - first_id;
    float* dst = out + i * C;
    if (r >= 0 && r < rows)
      table.load(r, C, dst, false);
    else
      std::fill(dst, dst + C, 0.0f);
  }
}

}  // namespace

void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t N,
                       std::int64_t C, bool accumulate) {
  gather_rows(ids, F32Rows{table}, out, N, C, accumulate);
}

void embedding_forward(const std::int32_t* ids, const std::uint16_t* table, Half type, float* out, std::int64_t N,
                       std::int64_t C, bool accumulate) {
  gather_rows(ids, HalfRows{table, type}, out, N, C, accumulate);
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
  gather_shard_rows(ids, F32Rows{table}, first_id, rows, out, N, C);
}

void embedding_shard_forward(const std::int32_t* ids, const std::uint16_t* table, Half type, std::int64_t first_id,
                             std::int64_t rows, float* out, std::int64_t N, std::int64_t C) {
  gather_shard_rows(ids, HalfRows{table, type}, first_id, rows, out, N, C);
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
