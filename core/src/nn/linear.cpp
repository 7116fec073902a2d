#include "tessera/nn/linear.hpp"

#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"

namespace tessera {

Linear::Linear(std::string name, const LinearOptions& o, std::uint64_t seed)
    : keep_input_(o.keep_input), weight_(name + ".weight", {o.out, o.in}) {
  init_normal(weight_.value, o.init_std, seed, weight_.name);
  if (o.bias) bias_ = std::make_unique<Parameter>(name + ".bias", Shape{o.out}, /*decay=*/false);
}

void Linear::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (bias_) out.push_back(bias_.get());
}

ModuleCost Linear::cost(const LinearOptions& o, std::int64_t rows) {
  ModuleCost c;
  c.parameters = plan_add(plan_mul(o.out, o.in), o.bias ? o.out : 0);
  c.parameter_tensors = o.bias ? 2 : 1;
  c.saved_elements = o.keep_input ? plan_mul(rows, o.in) : 0;
  return c;
}

Tensor Linear::forward(StepContext& ctx, const Tensor& x) {
  Shape shape = x.shape();
  shape.back() = weight_.value.size(0);
  Tensor y = x.new_empty(shape);
  ops::linear_forward(x, weight_.weight(), bias_ ? &bias_->weight() : nullptr, y);
  if (ctx.training && keep_input_) ctx.store().save(this, SavedTensor{x});
  return y;
}

Tensor Linear::backward(StepContext& ctx, const Tensor& dy) {
  return backward_with_input(ctx, dy, ctx.store().take<SavedTensor>(this).x);
}

Tensor Linear::backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) {
  Tensor dx = x.new_empty(x.shape());
  ops::linear_backward(dy, x, weight_.weight(), &dx, &weight_.grad, bias_ ? &bias_->grad : nullptr);
  ctx.grad_ready(weight_);
  if (bias_) ctx.grad_ready(*bias_);
  return dx;
}

}  // namespace tessera
