// How a row-major matmul out[M,N] = op(a)·op(b) becomes one column-major GEMM call (cuBLASLt's
// convention): a row-major matrix read as column-major is its transpose, so Tessera computes
// outᵀ[N,M] = op(b)ᵀ·op(a)ᵀ — cuBLAS's first operand is b, its second a, with the transpose flags
// carried over. Plain C++ (no CUDA header), so that the mapping is unit-tested on machines without a GPU
// (tests/cuda/test_gemm_layout.cpp checks it against a naive column-major GEMM).
#pragma once
#include <cstdint>

namespace tessera::cuda {

// One operand as cuBLAS sees it: a column-major rows × cols matrix with leading dimension ld, used
// transposed or not.
struct ColumnMajorOperand {
  bool transpose = false;
  std::int64_t rows = 0, cols = 0, ld = 0;
};

struct ColumnMajorGemm {
  std::int64_t m = 0, n = 0, k = 0;  // D[m,n] = op(A)[m,k]·op(B)[k,n]
  ColumnMajorOperand a, b;           // A is Tessera's b, B is Tessera's a
  std::int64_t ldc = 0;              // D and C: m × n, leading dimension ldc
};

// a: [M,K] ([K,M] when trans_a); b: [K,N] ([N,K] when trans_b); out: [M,N]; all row-major, dense.
ColumnMajorGemm column_major_gemm(std::int64_t M, std::int64_t N, std::int64_t K, bool trans_a, bool trans_b);

}  // namespace tessera::cuda
