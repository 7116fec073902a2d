#include "tessera/nn/dropout.hpp"

#include "tessera/ops.hpp"

namespace tessera {

Tensor Dropout::forward(StepContext& ctx, const Tensor& x, std::int64_t element_offset) {
  if (!active(ctx)) return x;
  Tensor y = x.new_empty(x.shape());
  ops::dropout_forward(x, p_, ctx.dropout_seed(site_), y, element_offset);
  return y;
}

Tensor Dropout::backward(StepContext& ctx, const Tensor& dy, std::int64_t element_offset) {
  if (!active(ctx)) return dy;
  Tensor dx = dy.new_empty(dy.shape());
  ops::dropout_backward(dy, p_, ctx.dropout_seed(site_), dx, element_offset);
  return dx;
}

}  // namespace tessera
