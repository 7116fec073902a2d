#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void squared_relu_forward(const Tensor& x, Tensor& y) {
  const char* op = "squared_relu_forward";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).squared_relu_forward(x, y);
}

void squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  const char* op = "squared_relu_backward";
  detail::require_float(op, "x", x);
  require(op, "dy", dy, x.dtype());
  require(op, "dx", dx, x.dtype());
  require_numel(op, "dy", dy, x.numel(), "x " + shape_str(x.shape()));
  require_numel(op, "dx", dx, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"dy", &dy}, {"x", &x}, {"dx", &dx}}, x.dtype()).squared_relu_backward(dy, x, dx);
}

}  // namespace tessera::ops
