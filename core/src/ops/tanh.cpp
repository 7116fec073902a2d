#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void tanh_forward(const Tensor& x, Tensor& y) {
  const char* op = "tanh_forward";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).tanh_forward(x, y);
}

void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const char* op = "tanh_backward";
  detail::require_float(op, "y", y);
  require(op, "dy", dy, y.dtype());
  require(op, "dx", dx, y.dtype());
  require_numel(op, "dy", dy, y.numel(), "y " + shape_str(y.shape()));
  require_numel(op, "dx", dx, y.numel(), "y " + shape_str(y.shape()));
  detail::backend_for(op, {{"dy", &dy}, {"y", &y}, {"dx", &dx}}, y.dtype()).tanh_backward(dy, y, dx);
}

}  // namespace tessera::ops
