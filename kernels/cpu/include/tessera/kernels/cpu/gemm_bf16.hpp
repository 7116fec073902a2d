// bf16 matrix products with f32 accumulation: c[M,N] = alpha·op(a)·op(b) + beta·c, a and b bf16
// (row-major, transposes as flags), c f32 or bf16. On a CPU that reports bf16 instructions
// (avx512_bf16, amx_bf16) they run through oneDNN's matmul (its primitives cached per shape);
// elsewhere a and b are converted to f32 and multiplied by OpenBLAS's sgemm, which gives the same
// result up to f32 summation order. TESSERA_BF16_GEMM=convert|onednn forces one way (tests run both).
//
// Must not be called from inside an OpenMP parallel region.
#pragma once
#include <cstdint>
#include <string>

namespace tessera::cpu {

void bf16_gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
               const std::uint16_t* a, std::int64_t lda, const std::uint16_t* b, std::int64_t ldb, float beta,
               void* c, bool c_is_bf16, std::int64_t ldc);

// Which way bf16_gemm runs on this CPU, for the log: "oneDNN matmul (brg:avx512_core_bf16)" or
// "f32 conversion + OpenBLAS sgemm (the CPU reports no bf16 instructions)".
std::string bf16_gemm_implementation();

}  // namespace tessera::cpu
