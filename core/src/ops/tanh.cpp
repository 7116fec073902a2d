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

// An activation's forward y = f(x) or backward dx = dy·f'(from y) on the backend the tensors live on.
void run_forward(const char* op, void (Backend::*f)(const Tensor&, Tensor&), const Tensor& x, Tensor& y) {
  check_forward(op, x, y);
  (detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).*f)(x, y);
}

void run_backward(const char* op, void (Backend::*f)(const Tensor&, const Tensor&, Tensor&), const Tensor& dy,
                  const Tensor& y, Tensor& dx) {
  check_backward(op, dy, y, dx);
  (detail::backend_for(op, {{"dy", &dy}, {"y", &y}, {"dx", &dx}}, y.dtype()).*f)(dy, y, dx);
}

}  // namespace

void tanh_forward(const Tensor& x, Tensor& y) { run_forward("tanh_forward", &Backend::tanh_forward, x, y); }

void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  run_backward("tanh_backward", &Backend::tanh_backward, dy, y, dx);
}

void sigmoid_forward(const Tensor& x, Tensor& y) { run_forward("sigmoid_forward", &Backend::sigmoid_forward, x, y); }

void sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  run_backward("sigmoid_backward", &Backend::sigmoid_backward, dy, y, dx);
}

}  // namespace tessera::ops
