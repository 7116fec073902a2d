#include "tessera/nn/dropout.hpp"

#include "tessera/ops.hpp"

namespace tessera {

Tensor Dropout::forward(StepContext& ctx, const Tensor& x) {
  if (!active(ctx)) return x;
  Tensor y = Tensor::empty(x.shape());
  ops::dropout_forward(x, p_, ctx.dropout_seed(site_), y);
  return y;
}

Tensor Dropout::backward(StepContext& ctx, const Tensor& dy) {
  if (!active(ctx)) return dy;
  Tensor dx = Tensor::empty(dy.shape());
  ops::dropout_backward(dy, p_, ctx.dropout_seed(site_), dx);
  return dx;
}

}  // namespace tessera
