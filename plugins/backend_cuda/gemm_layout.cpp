#include "gemm_layout.hpp"

namespace tessera::cuda {

namespace {

// A row-major [rows, cols] array, read as column-major: cols × rows with leading dimension cols.
ColumnMajorOperand as_column_major(std::int64_t rows, std::int64_t cols, bool transpose) {
  return {transpose, cols, rows, cols};
}

}  // namespace

ColumnMajorGemm column_major_gemm(std::int64_t M, std::int64_t N, std::int64_t K, bool trans_a, bool trans_b) {
  ColumnMajorGemm g;
  g.m = N;
  g.n = M;
  g.k = K;
  // Tessera's b is stored [K,N] (or [N,K] when trans_b); read column-major it is op(b)ᵀ already
  // unless trans_b, in which case cuBLAS must transpose it.
  g.a = trans_b ? as_column_major(N, K, true) : as_column_major(K, N, false);
  g.b = trans_a ? as_column_major(K, M, true) : as_column_major(M, K, false);
  g.ldc = N;
  return g;
}

}  // namespace tessera::cuda
