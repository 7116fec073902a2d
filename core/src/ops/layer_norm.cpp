#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
using detail::require_numel;
using detail::require_rows_cols;
using detail::require_shape;

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd) {
  const char* op = "layer_norm_forward";
  detail::require_float(op, "x", x);
  for (auto [name, t] : {std::pair{"w", &w}, {"b", &b}, {"y", &y}}) require(op, name, *t, x.dtype());
  require(op, "mean", mean);  // statistics in f32 whatever x's dtype
  require(op, "rstd", rstd);
  TESSERA_CHECK_SHAPE(x.dim() >= 1, "x must have a channel dim, got {}", shape_str(x.shape()));
  const std::int64_t C = last_dim(x), N = detail::rows_of(op, "x", x);
  require_shape(op, "w", w, {C});
  require_shape(op, "b", b, {C});
  require_rows_cols(op, "y", y, N, C);
  require_numel(op, "mean", mean, N, "the rows of x");
  require_numel(op, "rstd", rstd, N, "the rows of x");
  TESSERA_CHECK_SHAPE(eps >= 0.0f, "eps must be ≥ 0, got {}", eps);
  detail::backend_for(op, {{"x", &x}, {"w", &w}, {"b", &b}, {"y", &y}, {"mean", &mean}, {"rstd", &rstd}}, x.dtype())
      .layer_norm_forward(x, w, b, eps, y, mean, rstd);
}

void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db) {
  const char* op = "layer_norm_backward";
  detail::require_float(op, "x", x);
  for (auto [name, t] : {std::pair{"dy", &dy}, {"w", &w}, {"dx", &dx}}) require(op, name, *t, x.dtype());
  require(op, "mean", mean);
  require(op, "rstd", rstd);
  detail::require_f32_or(op, "dw", dw, x);
  detail::require_f32_or(op, "db", db, x);
  TESSERA_CHECK_SHAPE(x.dim() >= 1, "x must have a channel dim, got {}", shape_str(x.shape()));
  const std::int64_t C = last_dim(x), N = detail::rows_of(op, "x", x);
  require_rows_cols(op, "dy", dy, N, C);
  require_rows_cols(op, "dx", dx, N, C);
  require_shape(op, "w", w, {C});
  require_shape(op, "dw", dw, {C});
  require_shape(op, "db", db, {C});
  require_numel(op, "mean", mean, N, "the rows of x");
  require_numel(op, "rstd", rstd, N, "the rows of x");
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"w", &w}, {"mean", &mean}, {"rstd", &rstd}, {"dx", &dx},
                           {"dw", &dw}, {"db", &db}},
                          x.dtype())
      .layer_norm_backward(dy, x, w, mean, rstd, dx, dw, db);
}

}  // namespace tessera::ops
