#include "tessera/nn/rms_norm.hpp"

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

RmsNorm::RmsNorm(std::string name, std::int64_t channels, float eps)
    : weight_(name + ".weight", {channels}, false), eps_(eps) {
  weight_.value.fill_(1.0f);
}

void RmsNorm::collect_parameters(std::vector<Parameter*>& out) { out.push_back(&weight_); }

ModuleCost RmsNorm::cost(std::int64_t channels, std::int64_t rows) {
  ModuleCost c;
  c.parameters = channels;
  c.parameter_tensors = 1;
  c.saved_elements = plan_add(plan_mul(rows, channels), rows);
  return c;
}

Tensor RmsNorm::forward(StepContext& ctx, const Tensor& x) {
  TESSERA_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) == weight_.value.size(0) && x.size(-1) > 0,
                      "RMSNorm with weight {} expects x [..., {}] with a non-zero channel dim, got {}", weight_.name,
                      weight_.value.size(0), x.str());
  const std::int64_t rows = x.numel() / x.size(-1);
  Tensor y = x.new_empty(x.shape());
  Tensor rstd = x.new_empty({rows}, DType::f32);
  ops::rms_norm_forward(x, weight_.weight(), eps_, y, rstd);
  if (ctx.training) ctx.store().save(this, Saved{x, rstd});
  return y;
}

Tensor RmsNorm::backward(StepContext& ctx, const Tensor& dy) {
  const Saved s = ctx.store().take<Saved>(this);
  Tensor dx = s.x.new_empty(s.x.shape());
  ops::rms_norm_backward(dy, s.x, weight_.weight(), s.rstd, dx, weight_.grad);
  ctx.grad_ready(weight_);
  return dx;
}

}  // namespace tessera
