#include "tessera/nn/layer_norm.hpp"

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

LayerNorm::LayerNorm(std::string name, std::int64_t channels, float eps, bool zero_centered_gamma)
    : weight_(name + ".weight", {channels}, false),
      bias_(name + ".bias", {channels}, false),
      eps_(eps),
      zero_centered_gamma_(zero_centered_gamma) {
  weight_.value.fill_(zero_centered_gamma ? 0.0f : 1.0f);
}

Tensor LayerNorm::scale() const {
  const Tensor& w = weight_.weight();
  if (!zero_centered_gamma_) return w;
  if (!ones_.defined() || ones_.device() != w.device() || ones_.dtype() != w.dtype()) {
    ones_ = w.new_empty(w.shape());
    ops::cast(Tensor::full(w.shape(), 1.0f).to(w.device()), ones_);  // one copy to the device, once
  }
  Tensor s = w.new_empty(w.shape());
  ops::add(w, ones_, s);
  return s;
}

void LayerNorm::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  out.push_back(&bias_);
}

ModuleCost LayerNorm::cost(std::int64_t channels, std::int64_t rows) {
  ModuleCost c;
  c.parameters = plan_mul(2, channels);
  c.parameter_tensors = 2;
  c.saved_elements = plan_add(plan_mul(rows, channels), plan_mul(2, rows));
  return c;
}

Tensor LayerNorm::forward(StepContext& ctx, const Tensor& x) {
  // Checked here because the row count below divides by the channel dim.
  TESSERA_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) == weight_.value.size(0) && x.size(-1) > 0,
                      "LayerNorm with weight {} expects x [..., {}] with a non-zero channel dim, got {}", weight_.name,
                      weight_.value.size(0), x.str());
  const std::int64_t rows = x.numel() / x.size(-1);
  Tensor y = x.new_empty(x.shape());
  Tensor mean = x.new_empty({rows}, DType::f32), rstd = x.new_empty({rows}, DType::f32);  // f32 statistics
  ops::layer_norm_forward(x, scale(), bias_.weight(), eps_, y, mean, rstd);
  if (ctx.training) ctx.store().save(this, Saved{x, mean, rstd});
  return y;
}

Tensor LayerNorm::backward(StepContext& ctx, const Tensor& dy) {
  const Saved s = ctx.store().take<Saved>(this);
  Tensor dx = s.x.new_empty(s.x.shape());
  ops::layer_norm_backward(dy, s.x, scale(), s.mean, s.rstd, dx, weight_.grad, bias_.grad);  // d/dγ = d/d(1 + γ)
  ctx.grad_ready(weight_);
  ctx.grad_ready(bias_);
  return dx;
}

}  // namespace tessera
