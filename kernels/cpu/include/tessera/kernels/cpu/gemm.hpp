// Matrix products on the CPU, all through OpenBLAS's cblas_sgemm. Transposes are expressed as
// CBLAS flags, never as copies; row-major throughout.
//
//   sgemm:            c[M,N] = alpha·op(a)·op(b) + beta·c, op(a) [M,K], op(b) [K,N]
//   linear_forward:   y[N,out] = x[N,in]·w[out,in]ᵀ (+ bias[out])
//   linear_backward:  dx[N,in] = dy[N,out]·w[out,in]   (overwritten; skipped when dx is null)
//                     dw[out,in] += dyᵀ·x                (skipped when null)
//                     db[out] += Σ_rows dy               (skipped when null)
//
// Must not be called from inside an OpenMP parallel region (the BLAS has its own thread pool).
#pragma once
#include <cstdint>

namespace tessera::cpu {

void sgemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc);

void linear_forward(const float* x, const float* w, const float* bias, float* y, std::int64_t N,
                    std::int64_t in, std::int64_t out);

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw,
                     float* db, std::int64_t N, std::int64_t in, std::int64_t out);

}  // namespace tessera::cpu
