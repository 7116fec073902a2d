// The activations whose backward reads their output: tanh (BERT's pooler) and the sigmoid (the
// shared expert's gate).
#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

namespace {

void check_forward(const char* op, const Tensor& x, const Tensor& y) {
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
}

void check_backward(const char* op, const Tensor& dy, const Tensor& y, const Tensor& dx) {
  detail::require_float(op, "y", y);
  require(op, "dy", dy, y.dtype());
  require(op, "dx", dx, y.dtype());
  require_numel(op, "dy", dy, y.numel(), "y " + shape_str(y.shape()));
  require_numel(op, "dx", dx, y.numel(), "y " + shape_str(y.shape()));
}

}  // namespace

void tanh_forward(const Tensor& x, Tensor& y) {
  const char* op = "tanh_forward";
  check_forward(op, x, y);
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).tanh_forward(x, y);
}

void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const char* op = "tanh_backward";
  check_backward(op, dy, y, dx);
  detail::backend_for(op, {{"dy", &dy}, {"y", &y}, {"dx", &dx}}, y.dtype()).tanh_backward(dy, y, dx);
}

void sigmoid_forward(const Tensor& x, Tensor& y) {
  const char* op = "sigmoid_forward";
  check_forward(op, x, y);
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).sigmoid_forward(x, y);
}

void sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const char* op = "sigmoid_backward";
  check_backward(op, dy, y, dx);
  detail::backend_for(op, {{"dy", &dy}, {"y", &y}, {"dx", &dx}}, y.dtype()).sigmoid_backward(dy, y, dx);
}

}  // namespace tessera::ops
