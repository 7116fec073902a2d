#include "tessera/kernels/cpu/gemm.hpp"

#include <cblas.h>

#include <algorithm>

namespace tessera::cpu {

void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void linear_forward(const float* x, const float* w, const float* bias, float* y, std::int64_t N,
                    std::int64_t in, std::int64_t out) {
  float beta = 0.0f;
  if (bias) {
    // Prefill y with the bias and let the GEMM accumulate (beta = 1): the BLAS would otherwise
    // spend the same pass zeroing y, and a separate bias pass afterwards is saved. Serial on
    // purpose: OpenMP workers spin-wait after a region and would compete with the BLAS's own
    // threads during the GEMM that follows (measured: 2× slower GEMM with a parallel prefill).
    for (std::int64_t i = 0; i < N; ++i) std::copy(bias, bias + out, y + i * out);
    beta = 1.0f;
  }
  sgemm(false, true, N, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw,
                     float* db, std::int64_t N, std::int64_t in, std::int64_t out) {
  if (dx) sgemm(false, false, N, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (dw) sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    // Column sums: threads take column blocks; each block runs down the rows with the column
    // index innermost (contiguous, vectorised).
    constexpr std::int64_t kBlock = 512;
    const std::int64_t blocks = (out + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * out > (1 << 16))
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t j0 = blk * kBlock, j1 = std::min(out, j0 + kBlock);
      float acc[kBlock] = {};
      for (std::int64_t i = 0; i < N; ++i) {
        const float* row = dy + i * out;
#pragma omp simd
        for (std::int64_t j = j0; j < j1; ++j) acc[j - j0] += row[j];
      }
      for (std::int64_t j = j0; j < j1; ++j) db[j] += acc[j - j0];
    }
  }
}

}  // namespace tessera::cpu
