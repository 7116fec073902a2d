// Matmuls through cuBLASLt on the backend's stream: one handle, one 32 MiB workspace (what Hopper's
// kernels ask for), and the heuristic's algorithm cached per problem (shape, dtypes, alignment), so a
// training step asks the heuristic only on its first iteration.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

class CublasLt {
 public:
  explicit CublasLt(cudaStream_t stream);
  ~CublasLt();
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;

  // out[M,N] (out_type) = alpha·op(a)·op(b) + beta·out; a, b in ab_type, row-major and dense
  // (a [M,K] or [K,M] with trans_a; b [K,N] or [N,K] with trans_b). f32 accumulation always; TF32
  // products for f32 operands only after set_tf32(true).
  // bias (optional, [N] in out_type) is added to every row by the GEMM's epilogue.
  // precision = "tf32": f32 products on TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32).
  void set_tf32(bool on) { tf32_ = on; }

  void matmul(Float ab_type, const void* a, bool trans_a, const void* b, bool trans_b, Float out_type, void* out,
              std::int64_t M, std::int64_t N, std::int64_t K, float alpha, float beta, const void* bias = nullptr);

 private:
  using Key = std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t, bool, bool, int, bool, bool, bool>;
  cublasLtHandle_t handle_ = nullptr;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 32u << 20;
  std::map<Key, cublasLtMatmulAlgo_t> algos_;
  bool tf32_ = false;
};

}  // namespace tessera::cuda
