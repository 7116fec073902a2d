// CudaBackend's LayerNorm, embedding, loss and softmax entries: checked tensors become device
// pointers and sizes for kernels/cuda, on the compute stream. Unlike the CPU backend, ids and
// targets are not checked against their ranges here: they are on the device, and reading them back
// would synchronise every step, so the kernels skip (or zero) what lies outside instead.
#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "cuda_backend.hpp"
#include "tessera/error.hpp"
#include "tessera/kernels/cuda/cross_entropy.hpp"
#include "tessera/kernels/cuda/embedding.hpp"
#include "tessera/kernels/cuda/layer_norm.hpp"
#include "tessera/kernels/cuda/llama.hpp"

namespace tessera::cuda {

namespace {

float* f32(const Tensor& t) { return t.device_data<float>(); }
const float* f32_or_null(const Tensor& t) { return t.defined() ? f32(t) : nullptr; }  // optional masks
const std::int32_t* i32(const Tensor& t) { return t.device_data<std::int32_t>(); }

// The embedding backward sorts (id, position) pairs with 32-bit positions.
void require_sortable_ids(const char* op, const Tensor& ids) {
  if (ids.numel() > std::numeric_limits<std::int32_t>::max())
    throw ShapeError(fmt::format("{}: {} ids are more than the CUDA kernel sorts at once (2³¹ − 1)", op, ids.numel()));
}

}  // namespace

// ---- layer norm ---------------------------------------------------------------------------------

void CudaBackend::layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                                     Tensor& mean, Tensor& rstd) {
  cuda::layer_norm_forward(float_of(x, "layer_norm_forward"), x.device_raw(), w.device_raw(), b.device_raw(), eps,
                           y.device_raw(), f32(mean), f32(rstd), rows_of(x), cols_of(x), stream());
}

void CudaBackend::layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                                      const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db) {
  const char* op = "layer_norm_backward";
  const std::int64_t N = rows_of(x), C = cols_of(x);
  const cudaStream_t s = stream();
  Workspace ws(layer_norm_backward_workspace_bytes(N, C), s);
  cuda::layer_norm_backward(float_of(x, op), dy.device_raw(), x.device_raw(), w.device_raw(), f32(mean), f32(rstd),
                            dx.device_raw(), float_of(dw, op), dw.device_raw(), float_of(db, op), db.device_raw(), N, C,
                            ws.get(), s);
}

void CudaBackend::rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  cuda::rms_norm_forward(float_of(x, "rms_norm_forward"), x.device_raw(), w.device_raw(), eps, y.device_raw(), f32(rstd),
                         rows_of(x), cols_of(x), stream());
}

void CudaBackend::rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                                    Tensor& dw) {
  const char* op = "rms_norm_backward";
  cuda::rms_norm_backward(float_of(x, op), dy.device_raw(), x.device_raw(), w.device_raw(), f32(rstd), dx.device_raw(),
                          float_of(dw, op), dw.device_raw(), rows_of(x), cols_of(x), stream());
}

// ---- embedding ----------------------------------------------------------------------------------

void CudaBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate) {
  cuda::embedding_forward(float_of(table, "embedding_forward"), i32(ids), table.device_raw(), 0, table.size(0),
                          out.device_raw(), ids.numel(), table.size(1), accumulate, stream());
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  const char* op = "embedding_backward";
  require_sortable_ids(op, ids);
  const std::int64_t N = ids.numel(), rows = dtable.size(0);
  const cudaStream_t s = stream();  // first: it selects this process's GPU, which sizing the sort queries
  Workspace ws(embedding_backward_workspace_bytes(N, rows), s);
  cuda::embedding_backward(float_of(dout, op), i32(ids), dout.device_raw(), 0, rows, float_of(dtable, op),
                           dtable.device_raw(), N, dtable.size(1), ws.get(), s);
}

void CudaBackend::embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& out) {
  cuda::embedding_forward(float_of(table, "embedding_shard_forward"), i32(ids), table.device_raw(), first_id,
                          table.size(0), out.device_raw(), ids.numel(), table.size(1), /*accumulate=*/false, stream());
}

void CudaBackend::embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id,
                                           Tensor& dtable) {
  const char* op = "embedding_shard_backward";
  require_sortable_ids(op, ids);
  const std::int64_t N = ids.numel(), rows = dtable.size(0);
  const cudaStream_t s = stream();  // first: it selects this process's GPU, which sizing the sort queries
  Workspace ws(embedding_backward_workspace_bytes(N, rows), s);
  cuda::embedding_backward(float_of(dout, op), i32(ids), dout.device_raw(), first_id, rows, float_of(dtable, op),
                           dtable.device_raw(), N, dtable.size(1), ws.get(), s);
}

// ---- losses, softmax (f32 only: supports() says so, and f32() checks) ----------------------------

void CudaBackend::softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                        bool compute_grad, float grad_scale) {
  cuda::softmax_cross_entropy(f32(logits), i32(targets), f32_or_null(mask), f32(losses), rows_of(logits),
                              cols_of(logits), compute_grad, grad_scale, stream());
}

void CudaBackend::cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                                            Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, bool keep_exp) {
  cuda::cross_entropy_shard_stats(f32(logits), i32(targets), first_id, f32(row_max), f32(sum_exp), f32(target_logit),
                                  rows_of(logits), cols_of(logits), keep_exp, stream());
}

void CudaBackend::cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                                           const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                                           const Tensor& global_sum, float grad_scale) {
  cuda::cross_entropy_shard_grad(f32(exp_logits), i32(targets), first_id, f32_or_null(mask), f32(row_max),
                                 f32(global_max), f32(global_sum), grad_scale, rows_of(exp_logits),
                                 cols_of(exp_logits), stream());
}

void CudaBackend::cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                              Tensor& sum_at_global) {
  cuda::cross_entropy_shard_rescale(f32(row_max), f32(sum_exp), f32(global_max), f32(sum_at_global), row_max.numel(),
                                    stream());
}

void CudaBackend::cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum,
                                           const Tensor& target_logit, Tensor& losses) {
  cuda::cross_entropy_shard_loss(f32(global_max), f32(global_sum), f32(target_logit), f32(losses), losses.numel(),
                                 stream());
}

void CudaBackend::softmax(const Tensor& x, Tensor& out) {
  cuda::softmax(f32(x), f32(out), rows_of(x), cols_of(x), stream());
}

}  // namespace tessera::cuda
