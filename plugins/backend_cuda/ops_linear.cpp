// Matmuls and linear layers: cuBLASLt (cublaslt_matmul.hpp), bias gradients by column sums.
#include "cublaslt_matmul.hpp"
#include "cuda_backend.hpp"
#include "tessera/kernels/cuda/elementwise.hpp"

namespace tessera::cuda {

void CudaBackend::matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, float alpha,
                         float beta) {
  const std::int64_t ca = cols_of(a), ra = rows_of(a);
  const std::int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca, N = trans_b ? b.size(0) : b.size(1);
  if (K == 0) {  // an empty sum: out = beta·out
    if (beta == 0.0f) fill(out, 0.0f);
    else if (beta != 1.0f) cuda::scale(float_of(out, "matmul"), out.device_raw(), beta, out.numel(), stream());
    return;
  }
  blas().matmul(float_of(a, "matmul"), a.device_raw(), trans_a, b.device_raw(), trans_b, float_of(out, "matmul"),
                out.device_raw(), M, N, K, alpha, beta);
}

void CudaBackend::linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const std::int64_t N = rows_of(x), in_f = w.size(1), out_f = w.size(0);
  const Float t = float_of(x, "linear_forward");
  if (in_f == 0) {
    fill(y, 0.0f);
    if (bias) cuda::add_bias(t, y.device_raw(), bias->device_raw(), N, out_f, stream());
    return;
  }
  // y = x·wᵀ with the bias added by the GEMM's epilogue (one rounding of the f32 sum).
  blas().matmul(t, x.device_raw(), false, w.device_raw(), true, float_of(y, "linear_forward"), y.device_raw(), N, out_f,
                in_f, 1.0f, 0.0f, bias ? bias->device_raw() : nullptr);
}

void CudaBackend::linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                                  Tensor* db) {
  const std::int64_t N = rows_of(x), in_f = w.size(1), out_f = w.size(0);
  const Float t = float_of(x, "linear_backward");
  if (dx) {  // dx = dy·w
    if (out_f == 0) fill(*dx, 0.0f);
    else blas().matmul(t, dy.device_raw(), false, w.device_raw(), false, float_of(*dx, "linear_backward"), dx->device_raw(), N, in_f, out_f, 1.0f, 0.0f);
  }
  // dw += dyᵀ·x, accumulated straight into the gradient's dtype (f32 in mixed precision).
  if (dw && N > 0)
    blas().matmul(t, dy.device_raw(), true, x.device_raw(), false, float_of(*dw, "linear_backward"), dw->device_raw(),
                  out_f, in_f, N, 1.0f, 1.0f);
  if (db && N > 0) {
    Workspace ws(column_sum_workspace_bytes(N, out_f), stream());
    column_sum_accumulate(t, dy.device_raw(), float_of(*db, "linear_backward"), db->device_raw(), N, out_f, ws.get(),
                          stream());
  }
}

}  // namespace tessera::cuda
