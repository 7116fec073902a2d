#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void gelu_forward(const Tensor& x, Tensor& y, GeluForm form) {
  const char* op = "gelu_forward";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).gelu_forward(x, y, form);
}

void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, GeluForm form) {
  const char* op = "gelu_backward";
  detail::require_float(op, "x", x);
  require(op, "dy", dy, x.dtype());
  require(op, "dx", dx, x.dtype());
  require_numel(op, "dy", dy, x.numel(), "x " + shape_str(x.shape()));
  require_numel(op, "dx", dx, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"dx", &dx}}, x.dtype()).gelu_backward(dy, x, dx, form);
}

}  // namespace tessera::ops
