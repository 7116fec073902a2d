#include "op_checks.hpp"
#include "tessera/kernels/cpu/gelu.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void gelu_forward(const Tensor& x, Tensor& y) {
  const char* op = "gelu_forward";
  require(op, "x", x);
  require(op, "y", y);
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  cpu::gelu_forward(x.data<float>(), y.data<float>(), x.numel());
}

void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx) {
  const char* op = "gelu_backward";
  require(op, "dy", dy);
  require(op, "x", x);
  require(op, "dx", dx);
  require_numel(op, "dy", dy, x.numel(), "x " + shape_str(x.shape()));
  require_numel(op, "dx", dx, x.numel(), "x " + shape_str(x.shape()));
  cpu::gelu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel());
}

}  // namespace tessera::ops
