// matmul and the Linear layer: shape checks here, the GEMMs in kernels/cpu/src/gemm.cpp.
#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
using detail::require_rows_cols;
using detail::require_shape;

void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out, float alpha,
            float beta) {
  const char* op = "matmul";
  detail::require_float(op, "a", a);
  require(op, "b", b, a.dtype());
  detail::require_f32_or(op, "out", out, a);
  if (a.dim() < 2 || b.dim() != 2 || out.dim() < 2)
    throw ShapeError(fmt::format("matmul: a {} and out {} need ≥ 2 dims and b {} exactly 2",
                                 shape_str(a.shape()), shape_str(out.shape()), shape_str(b.shape())));
  // a as stored is [ra, ca] with leading dims flattened.
  const std::int64_t ca = last_dim(a), ra = detail::rows_of(op, "a", a);
  const std::int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca;
  const std::int64_t kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  TESSERA_CHECK_SHAPE(kb == K, "inner dims differ: op(a) is [{}, {}] (a {}{}), op(b) is [{}, {}] (b {}{})",
                      M, K, shape_str(a.shape()), trans_a ? "ᵀ" : "", kb, N, shape_str(b.shape()),
                      trans_b ? "ᵀ" : "");
  require_rows_cols(op, "out", out, M, N);
  TESSERA_CHECK_SHAPE(!out.same_memory(a) && !out.same_memory(b), "out must not alias a or b");
  detail::backend_for(op, {{"a", &a}, {"b", &b}, {"out", &out}}, a.dtype()).matmul(a, trans_a, b, trans_b, out, alpha, beta);
}

namespace {

struct LinearDims {
  std::int64_t rows, in_features, out_features;
};

// Checks x [..., in] and w [out, in] (PyTorch layout) and returns N = rows of x flattened.
LinearDims linear_dims(const char* op, const Tensor& x, const Tensor& w) {
  detail::require_float(op, "x", x);
  require(op, "w", w, x.dtype());
  if (w.dim() != 2) throw ShapeError(fmt::format("{}: w must be [out, in], got {}", op, shape_str(w.shape())));
  const std::int64_t out_f = w.size(0), in_f = w.size(1);
  if (x.dim() < 1 || last_dim(x) != in_f)
    throw ShapeError(fmt::format("{}: x {} does not end in in_features = {} of w {}", op, shape_str(x.shape()), in_f,
                                 shape_str(w.shape())));
  return {detail::rows_of(op, "x", x), in_f, out_f};
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "linear_forward";
  const auto [N, in_f, out_f] = linear_dims(op, x, w);
  (void)in_f;
  require(op, "y", y, x.dtype());
  require_rows_cols(op, "y", y, N, out_f);
  if (bias) {
    require(op, "bias", *bias, x.dtype());
    require_shape(op, "bias", *bias, {out_f});
  }
  detail::backend_for(op, {{"x", &x}, {"w", &w}, {"bias", bias}, {"y", &y}}, x.dtype()).linear_forward(x, w, bias, y);
}

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db) {
  const char* op = "linear_backward";
  const auto [N, in_f, out_f] = linear_dims(op, x, w);
  require(op, "dy", dy, x.dtype());
  require_rows_cols(op, "dy", dy, N, out_f);
  if (dx) {
    require(op, "dx", *dx, x.dtype());
    require_rows_cols(op, "dx", *dx, N, in_f);
  }
  if (dw) {
    detail::require_f32_or(op, "dw", *dw, x);
    require_shape(op, "dw", *dw, w.shape());
  }
  if (db) {
    detail::require_f32_or(op, "db", *db, x);
    require_shape(op, "db", *db, {out_f});
  }
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"w", &w}, {"dx", dx}, {"dw", dw}, {"db", db}}, x.dtype())
      .linear_backward(dy, x, w, dx, dw, db);
}

}  // namespace tessera::ops
