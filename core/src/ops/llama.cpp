// Argument checks of the Llama-style block ops (RMSNorm, SwiGLU, RoPE; ops.hpp), then the tensors'
// backend.
#include <cmath>

#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
using detail::require_numel;
using detail::require_rows_cols;
using detail::require_shape;

void rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd) {
  const char* op = "rms_norm_forward";
  detail::require_float(op, "x", x);
  require(op, "w", w, x.dtype());
  require(op, "y", y, x.dtype());
  require(op, "rstd", rstd);  // f32 whatever x's dtype
  TESSERA_CHECK_SHAPE(x.dim() >= 1, "x must have a channel dim, got {}", shape_str(x.shape()));
  const std::int64_t C = last_dim(x), N = detail::rows_of(op, "x", x);
  require_shape(op, "w", w, {C});
  require_rows_cols(op, "y", y, N, C);
  require_numel(op, "rstd", rstd, N, "the rows of x");
  TESSERA_CHECK_SHAPE(eps >= 0.0f, "eps must be ≥ 0, got {}", eps);
  detail::backend_for(op, {{"x", &x}, {"w", &w}, {"y", &y}, {"rstd", &rstd}}, x.dtype())
      .rms_norm_forward(x, w, eps, y, rstd);
}

void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                       Tensor& dw) {
  const char* op = "rms_norm_backward";
  detail::require_float(op, "x", x);
  for (auto [name, t] : {std::pair{"dy", &dy}, {"w", &w}, {"dx", &dx}}) require(op, name, *t, x.dtype());
  require(op, "rstd", rstd);
  detail::require_f32_or(op, "dw", dw, x);
  TESSERA_CHECK_SHAPE(x.dim() >= 1, "x must have a channel dim, got {}", shape_str(x.shape()));
  const std::int64_t C = last_dim(x), N = detail::rows_of(op, "x", x);
  require_rows_cols(op, "dy", dy, N, C);
  require_rows_cols(op, "dx", dx, N, C);
  require_shape(op, "w", w, {C});
  require_shape(op, "dw", dw, {C});
  require_numel(op, "rstd", rstd, N, "the rows of x");
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"w", &w}, {"rstd", &rstd}, {"dx", &dx}, {"dw", &dw}}, x.dtype())
      .rms_norm_backward(dy, x, w, rstd, dx, dw);
}

namespace {
// x [N, 2F] against y (or dy) [N, F]: F is y's last dim.
void check_swiglu(const char* op, const char* yname, const Tensor& x, const Tensor& y) {
  TESSERA_CHECK_SHAPE(y.dim() >= 1 && x.dim() >= 1, "{}: x [N,2F] and {} [N,F] need a channel dim, got {} and {}", op,
                      yname, shape_str(x.shape()), shape_str(y.shape()));
  const std::int64_t F = last_dim(y), N = detail::rows_of(op, yname, y);
  TESSERA_CHECK_SHAPE(last_dim(x) == 2 * F && x.numel() == N * 2 * F,
                      "{}: x must be [N, 2F] = [{}, {}] (the halves x0 | x1) for {} {}, got {}", op, N, 2 * F, yname,
                      shape_str(y.shape()), shape_str(x.shape()));
}
void check_glu(const char* op, const GatedLinearUnit& g) {
  if (!(g.alpha > 0.0f) || !std::isfinite(g.alpha) || !(g.clamp > 0.0f) || !std::isfinite(g.linear_offset))
    throw ShapeError(fmt::format("{}: the gated linear unit needs alpha > 0 (got {}), clamp > 0 (got {}) and a finite "
                                 "linear offset (got {})",
                                 op, g.alpha, g.clamp, g.linear_offset));
}
}  // namespace

void swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g) {
  const char* op = "swiglu_forward";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  check_swiglu(op, "y", x, y);
  check_glu(op, g);
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).swiglu_forward(x, y, g);
}

void swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g) {
  const char* op = "swiglu_backward";
  detail::require_float(op, "x", x);
  require(op, "dy", dy, x.dtype());
  require(op, "dx", dx, x.dtype());
  check_swiglu(op, "dy", x, dy);
  check_glu(op, g);
  require_numel(op, "dx", dx, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"dx", &dx}}, x.dtype()).swiglu_backward(dy, x, dx, g);
}

namespace {
void check_rope(const char* op, const RopeShape& s, const Tensor& x) {
  detail::require_float(op, "x", x);
  TESSERA_CHECK_SHAPE(s.B >= 0 && s.T >= 0 && s.H >= 1 && s.D >= 1 && s.row_width >= s.H * s.D,
                      "{}: shape B {} T {} H {} D {} with row width {} (must hold the H·D channels)", op, s.B, s.T,
                      s.H, s.D, s.row_width);
  TESSERA_CHECK_SHAPE(s.rotary_dim >= 2 && s.rotary_dim % 2 == 0 && s.rotary_dim <= s.D,
                      "{}: rotary_dim {} must be even, ≥ 2 and ≤ the head size {}", op, s.rotary_dim, s.D);
  TESSERA_CHECK_SHAPE(s.base > 0.0 && s.position_offset >= 0, "{}: base {} must be > 0, position offset {} ≥ 0", op,
                      s.base, s.position_offset);
  TESSERA_CHECK_SHAPE(s.scaling_factor >= 0.0 && std::isfinite(s.scaling_factor),
                      "{}: scaling factor {} must be finite and ≥ 0 (0: none)", op, s.scaling_factor);
  TESSERA_CHECK_SHAPE(s.interpolation > 0.0 && std::isfinite(s.interpolation),
                      "{}: position interpolation factor {} must be finite and > 0 (1: none)", op, s.interpolation);
  const RopeYarn& y = s.yarn;
  TESSERA_CHECK_SHAPE(y.factor == 0.0 || (y.factor >= 1.0 && std::isfinite(y.factor) && s.scaling_factor == 0.0 &&
                                          y.original_context > 0.0 && y.beta_fast > 0.0 && y.beta_slow > 0.0 &&
                                          std::isfinite(y.mscale) && std::isfinite(y.mscale_all_dim)),
                      "{}: YaRN factor {} (0: none; else ≥ 1, without Llama 3.1's scaling), original context {}, "
                      "beta_fast {}, beta_slow {} (> 0)",
                      op, y.factor, y.original_context, y.beta_fast, y.beta_slow);
  TESSERA_CHECK_SHAPE(x.numel() == s.B * s.T * s.row_width,
                      "{}: x must be [B,T,W] = [{}, {}, {}], got {}", op, s.B, s.T, s.row_width, shape_str(x.shape()));
}
}  // namespace

void rope_forward(const RopeShape& s, Tensor& x) {
  const char* op = "rope_forward";
  check_rope(op, s, x);
  detail::backend_for(op, {{"x", &x}}, x.dtype()).rope(s, x, false);
}

void rope_backward(const RopeShape& s, Tensor& dx) {
  const char* op = "rope_backward";
  check_rope(op, s, dx);
  detail::backend_for(op, {{"dx", &dx}}, dx.dtype()).rope(s, dx, true);
}

}  // namespace tessera::ops
