// The row-major → column-major GEMM mapping the CUDA backend hands cuBLASLt (gemm_layout.hpp),
// checked on the CPU: a naive column-major GEMM fed with the mapped arguments must give the
// row-major product, for every transpose combination and odd shapes.
#include <vector>

#include <catch2/catch.hpp>

#include "gemm_layout.hpp"

using tessera::cuda::column_major_gemm;
using tessera::cuda::ColumnMajorGemm;
using tessera::cuda::ColumnMajorOperand;

namespace {

// Element (r, c) of op(X) for a column-major X as cuBLAS reads it.
double at(const std::vector<double>& x, const ColumnMajorOperand& o, long r, long c) {
  return o.transpose ? x[static_cast<std::size_t>(c + r * o.ld)] : x[static_cast<std::size_t>(r + c * o.ld)];
}

}  // namespace

TEST_CASE("a row-major matmul maps onto one column-major GEMM", "[unit]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [M, N, K] : {std::tuple{3L, 5L, 7L}, std::tuple{1L, 4L, 2L}, std::tuple{6L, 1L, 3L}}) {
        // Row-major a (M×K, or K×M stored when ta), b (K×N, or N×K when tb).
        std::vector<double> a(static_cast<std::size_t>(M * K)), b(static_cast<std::size_t>(K * N));
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.5 + static_cast<double>(i % 7) - static_cast<double>(i % 3);
        for (std::size_t i = 0; i < b.size(); ++i) b[i] = 1.0 - static_cast<double>(i % 5) * 0.25;
        auto A = [&](long m, long k) { return ta ? a[static_cast<std::size_t>(k * M + m)] : a[static_cast<std::size_t>(m * K + k)]; };
        auto B = [&](long k, long n) { return tb ? b[static_cast<std::size_t>(n * K + k)] : b[static_cast<std::size_t>(k * N + n)]; };

        const ColumnMajorGemm g = column_major_gemm(M, N, K, ta, tb);
        REQUIRE(g.m == N);
        REQUIRE(g.n == M);
        REQUIRE(g.k == K);
        // The stored operands' shapes agree with their data.
        CHECK(g.a.rows * g.a.cols == N * K);
        CHECK(g.b.rows * g.b.cols == M * K);
        // D (column-major m×n, ldc) = op(A)·op(B) with A = Tessera's b, B = Tessera's a.
        std::vector<double> d(static_cast<std::size_t>(g.ldc * g.n));
        for (long j = 0; j < g.n; ++j)
          for (long i = 0; i < g.m; ++i) {
            double s = 0;
            for (long k = 0; k < g.k; ++k) s += at(b, g.a, i, k) * at(a, g.b, k, j);
            d[static_cast<std::size_t>(i + j * g.ldc)] = s;
          }
        // Read back row-major: out[m][n] is d at (n, m).
        for (long m = 0; m < M; ++m)
          for (long n = 0; n < N; ++n) {
            double want = 0;
            for (long k = 0; k < K; ++k) want += A(m, k) * B(k, n);
            INFO("M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb << " at " << m << "," << n);
            CHECK(d[static_cast<std::size_t>(n + m * g.ldc)] == want);
          }
      }
}
