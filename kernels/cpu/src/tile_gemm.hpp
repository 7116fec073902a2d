// Small register-blocked matrix product for the tiles of flash attention (64×64 blocks, D ≤ a few
// hundred), called from inside OpenMP regions where the BLAS would either spawn its own threads or
// spend more time packing than computing (measured: OpenBLAS reaches ~70 GFLOP/s on 64³ tiles on
// two cores, this loop ~110).
//
// Written with GCC/Clang vector extensions rather than intrinsics: with AVX-512 a vfloat is one
// zmm register and kRows × kMaxVecs accumulators (24) fit the 32 registers; elsewhere it is 8 wide
// (AVX2: 12 accumulators of 16 registers) and the same code compiles for any target.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace tessera::cpu::detail {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16, kMaxVecs = 4;
#else
inline constexpr int kLanes = 8, kMaxVecs = 2;
#endif
inline constexpr int kRows = 6;
using vfloat = float __attribute__((vector_size(kLanes * sizeof(float))));

// c[MR rows, NV·kLanes cols] (+)= Σ_k a[i·ra + k·ca] · b[k·ldb + col]: the accumulators stay in
// registers for the whole k loop; a is broadcast, so a transposed operand (ca ≠ 1) costs nothing.
template <int MR, int NV>
inline void gemm_block(std::int64_t K, const float* a, std::int64_t ra, std::int64_t ca, const float* b,
                       std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  vfloat acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      if (accumulate) std::memcpy(&acc[i][v], c + i * ldc + v * kLanes, sizeof(vfloat));
      else acc[i][v] = vfloat{};
    }
  for (std::int64_t k = 0; k < K; ++k) {
    vfloat bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + k * ldb + v * kLanes, sizeof(vfloat));
    for (int i = 0; i < MR; ++i) {
      const float x = a[i * ra + k * ca];
      for (int v = 0; v < NV; ++v) acc[i][v] += x * bv[v];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) std::memcpy(c + i * ldc + v * kLanes, &acc[i][v], sizeof(vfloat));
}

template <int MR>
inline void gemm_rows(int nv, std::int64_t K, const float* a, std::int64_t ra, std::int64_t ca, const float* b,
                      std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  if constexpr (kMaxVecs >= 4) {
    if (nv == 4) return gemm_block<MR, 4>(K, a, ra, ca, b, ldb, c, ldc, accumulate);
    if (nv == 3) return gemm_block<MR, 3>(K, a, ra, ca, b, ldb, c, ldc, accumulate);
  }
  if (nv == 2) return gemm_block<MR, 2>(K, a, ra, ca, b, ldb, c, ldc, accumulate);
  gemm_block<MR, 1>(K, a, ra, ca, b, ldb, c, ldc, accumulate);
}

// c[M,N] = (accumulate ? c : 0) + a·b, with a[i,k] = a[i·ra + k·ca] (ra = lda, ca = 1 for a
// row-major a; ra = 1, ca = lda for its transpose), b row-major [K,N] with row stride ldb, c with
// row stride ldc. Column blocks of whole vectors go through gemm_block; the last N mod kLanes
// columns (odd head sizes only) through a plain loop. Every element is summed over k in order, so
// the result does not depend on how the columns were blocked.
inline void gemm_tile(std::int64_t M, std::int64_t N, std::int64_t K, const float* a, std::int64_t ra,
                      std::int64_t ca, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                      bool accumulate) {
  std::int64_t j = 0;
  while (N - j >= kLanes) {
    const int nv = static_cast<int>(std::min<std::int64_t>(kMaxVecs, (N - j) / kLanes));
    std::int64_t i = 0;
    for (; i + kRows <= M; i += kRows)
      gemm_rows<kRows>(nv, K, a + i * ra, ra, ca, b + j, ldb, c + i * ldc + j, ldc, accumulate);
    const float* ai = a + i * ra;
    float* ci = c + i * ldc + j;
    switch (M - i) {
      case 5: gemm_rows<5>(nv, K, ai, ra, ca, b + j, ldb, ci, ldc, accumulate); break;
      case 4: gemm_rows<4>(nv, K, ai, ra, ca, b + j, ldb, ci, ldc, accumulate); break;
      case 3: gemm_rows<3>(nv, K, ai, ra, ca, b + j, ldb, ci, ldc, accumulate); break;
      case 2: gemm_rows<2>(nv, K, ai, ra, ca, b + j, ldb, ci, ldc, accumulate); break;
      case 1: gemm_rows<1>(nv, K, ai, ra, ca, b + j, ldb, ci, ldc, accumulate); break;
      default: break;
    }
    j += static_cast<std::int64_t>(nv) * kLanes;
  }
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t jj = j; jj < N; ++jj) {
      float s = accumulate ? c[i * ldc + jj] : 0.0f;
      for (std::int64_t k = 0; k < K; ++k) s += a[i * ra + k * ca] * b[k * ldb + jj];
      c[i * ldc + jj] = s;
    }
}

}  // namespace tessera::cpu::detail
