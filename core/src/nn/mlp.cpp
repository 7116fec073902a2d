#include "tessera/nn/mlp.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {
ColumnParallelOptions fc1_options(const MlpOptions& o) {
  ColumnParallelOptions c{o.hidden, o.swiglu ? 2 * o.ffn_hidden : o.ffn_hidden, o.bias, o.init_std};
  c.sequence_parallel = o.sequence_parallel;
  c.reduce_input_grad = o.reduce;
  if (o.swiglu) c.blocks = 2;  // [x0 | x1], each half split over tp
  c.keep_input = o.keep_input;
  return c;
}
RowParallelOptions fc2_options(const MlpOptions& o) {
  RowParallelOptions r{o.ffn_hidden, o.hidden, o.bias, o.output_init_std, o.sequence_parallel};
  r.reduce_output = o.reduce;
  r.keep_input = !o.recompute_activation;
  return r;
}
}  // namespace

Mlp::Mlp(const std::string& name, const MlpOptions& o, std::uint64_t seed, TpGroup tp)
    : swiglu_(o.swiglu),
      squared_relu_(o.squared_relu),
      recompute_activation_(o.recompute_activation),
      gelu_(o.gelu),
      glu_(o.glu),
      fc1_(name + ".fc1", fc1_options(o), seed, tp),
      fc2_(name + ".fc2", fc2_options(o), seed, tp) {
  if (o.swiglu && o.squared_relu) throw ConfigError("an MLP is SwiGLU or squared ReLU, not both");
}

ModuleCost Mlp::cost(const MlpOptions& o, std::int64_t rows, std::int64_t tp) {
  ModuleCost c = ColumnParallelLinear::cost(fc1_options(o), rows, tp);
  c += RowParallelLinear::cost(fc2_options(o), rows, tp);  // keeps GELU's output (not when recomputing it)
  // The activation's input: GELU's [rows, ffn/tp], SwiGLU's [rows, 2·ffn/tp].
  c.saved_elements = plan_add(c.saved_elements, plan_mul(rows, (o.swiglu ? 2 : 1) * (o.ffn_hidden / tp)));
  return c;
}

void Mlp::collect_parameters(std::vector<Parameter*>& out) {
  fc1_.collect_parameters(out);
  fc2_.collect_parameters(out);
}

void Mlp::report_grads_final(StepContext& ctx) {
  std::vector<Parameter*> params;  // backward's order: fc2, then fc1
  fc2_.collect_parameters(params);
  fc1_.collect_parameters(params);
  for (Parameter* p : params) ctx.grad_ready(*p);
}

Tensor Mlp::activation(const Tensor& h) const {
  Tensor a;
  if (swiglu_) {
    Shape shape = h.shape();
    shape.back() /= 2;
    a = h.new_empty(shape);
    ops::swiglu_forward(h, a, glu_);
  } else {
    a = h.new_empty(h.shape());
    squared_relu_ ? ops::squared_relu_forward(h, a) : ops::gelu_forward(h, a, gelu_);
  }
  return a;
}

Tensor Mlp::forward(StepContext& ctx, const Tensor& x) {
  Tensor h = fc1_.forward(ctx, x);
  Tensor a = activation(h);
  if (ctx.training) ctx.store().save(this, SavedTensor{h});
  return fc2_.forward(ctx, a);
}

Tensor Mlp::backward_to_fc1(StepContext& ctx, const Tensor& dy) {
  Tensor h = ctx.store().take<SavedTensor>(this).x;
  // Recomputing the activation: fc2 kept nothing, its input is the activation of h again.
  Tensor da = recompute_activation_ ? fc2_.backward(ctx, dy, activation(h)) : fc2_.backward(ctx, dy);
  if (swiglu_) {
    Tensor dh = h.new_empty(h.shape());
    ops::swiglu_backward(da, h, dh, glu_);
    return dh;
  }
  // In place: da is ours.
  squared_relu_ ? ops::squared_relu_backward(da, h, da) : ops::gelu_backward(da, h, da, gelu_);
  return da;
}

Tensor Mlp::backward(StepContext& ctx, const Tensor& dy) { return fc1_.backward(ctx, backward_to_fc1(ctx, dy)); }

Tensor Mlp::backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) {
  return fc1_.backward_with_input(ctx, backward_to_fc1(ctx, dy), x);
}

std::string describe_gated_linear_unit(const GatedLinearUnit& g) {
  std::string name = g.alpha == 1.0f ? "SwiGLU" : g.alpha == kQuickGeluAlpha ? "quick GeGLU" : fmt::format("GLU of x·σ({}·x)", g.alpha);
  std::vector<std::string> parts;
  if (std::isfinite(g.clamp)) parts.push_back(fmt::format("clamp {}", g.clamp));
  if (g.linear_offset != 0.0f) parts.push_back(fmt::format("linear offset {}", g.linear_offset));
  return parts.empty() ? name : fmt::format("{} ({})", name, fmt::join(parts, ", "));
}

}  // namespace tessera
