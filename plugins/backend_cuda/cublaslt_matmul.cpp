#include "cublaslt_matmul.hpp"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "gemm_layout.hpp"
#include "tessera/error.hpp"

namespace tessera::cuda {

namespace {

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("cuBLASLt {}: {} ({})", what, cublasLtGetStatusName(s), cublasLtGetStatusString(s)));
}

cudaDataType_t data_type(Float t) {
  switch (t) {
    case Float::bf16: return CUDA_R_16BF;
    case Float::f16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}

// The largest power of two (≤ 256) dividing the address: cuBLASLt picks kernels by alignment.
int alignment_of(const void* p) {
  const auto u = reinterpret_cast<std::uintptr_t>(p);
  int a = 1;
  while (a < 256 && u % static_cast<std::uintptr_t>(a * 2) == 0) a *= 2;
  return a;
}

template <class T, cublasStatus_t (*Destroy)(T)>
struct Handle {
  T h = nullptr;
  ~Handle() {
    if (h) Destroy(h);
  }
};

}  // namespace

CublasLt::CublasLt(cudaStream_t stream) : stream_(stream) {
  check(cublasLtCreate(&handle_), "create");
  const cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
  if (e != cudaSuccess) {
    cublasLtDestroy(handle_);
    throw Error(fmt::format("cuBLASLt workspace of {} bytes: {}", workspace_bytes_, cudaGetErrorString(e)));
  }
}

CublasLt::~CublasLt() {
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

void CublasLt::matmul(Float ab_type, const void* a, bool trans_a, const void* b, bool trans_b, Float out_type,
                      void* out, std::int64_t M, std::int64_t N, std::int64_t K, float alpha, float beta,
                      const void* bias) {
  if (M == 0 || N == 0) return;
  const ColumnMajorGemm g = column_major_gemm(M, N, K, trans_a, trans_b);
  // cuBLAS's A is Tessera's b, its B Tessera's a (gemm_layout.hpp).
  const void* A = b;
  const void* B = a;
  const int align = std::min({alignment_of(A), alignment_of(B), alignment_of(out), bias ? alignment_of(bias) : 256});

  Handle<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy> op;
  const bool tf32 = tf32_ && ab_type == Float::f32;
  check(cublasLtMatmulDescCreate(&op.h, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
        "matmul descriptor");
  const cublasOperation_t ta = g.a.transpose ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.b.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "TRANSA");
  check(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "TRANSB");
  if (bias) {
    // Column-major D is outᵀ: its m rows are Tessera's N columns, which the bias vector runs along.
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = data_type(out_type);
    check(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "epilogue");
    check(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "bias");
    check(cublasLtMatmulDescSetAttribute(op.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)),
          "bias type");
  }
  Handle<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy> la, lb, lc;
  check(cublasLtMatrixLayoutCreate(&la.h, data_type(ab_type), g.a.rows, g.a.cols, g.a.ld), "layout A");
  check(cublasLtMatrixLayoutCreate(&lb.h, data_type(ab_type), g.b.rows, g.b.cols, g.b.ld), "layout B");
  check(cublasLtMatrixLayoutCreate(&lc.h, data_type(out_type), g.m, g.n, g.ldc), "layout C");

  const Key key{static_cast<int>(ab_type), static_cast<int>(out_type), M, N, K, trans_a, trans_b, align, beta != 0.0f,
                bias != nullptr, tf32};
  auto found = algos_.find(key);
  if (found == algos_.end()) {
    Handle<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy> pref;
    check(cublasLtMatmulPreferenceCreate(&pref.h), "preference");
    check(cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                               sizeof(workspace_bytes_)),
          "workspace preference");
    const std::uint32_t al = static_cast<std::uint32_t>(align);
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      check(cublasLtMatmulPreferenceSetAttribute(pref.h, attr, &al, sizeof(al)), "alignment preference");
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    check(cublasLtMatmulAlgoGetHeuristic(handle_, op.h, la.h, lb.h, lc.h, lc.h, pref.h, 1, &result, &count),
          "heuristic");
    if (count == 0)
      throw Error(fmt::format("cuBLASLt has no algorithm for a {}x{}x{} matmul (types {}/{}, alignment {})", M, N, K,
                              static_cast<int>(ab_type), static_cast<int>(out_type), align));
    found = algos_.emplace(key, result.algo).first;
  }
  check(cublasLtMatmul(handle_, op.h, &alpha, A, la.h, B, lb.h, &beta, out, lc.h, out, lc.h, &found->second,
                       workspace_, workspace_bytes_, stream_),
        "matmul");
}

}  // namespace tessera::cuda
