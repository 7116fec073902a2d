#include "tessera/nn/mlp.hpp"

#include "tessera/ops.hpp"

namespace tessera {

namespace {
ColumnParallelOptions fc1_options(const MlpOptions& o) {
  ColumnParallelOptions c{o.hidden, o.ffn_hidden, true, o.init_std};
  c.sequence_parallel = o.sequence_parallel;
  return c;
}
RowParallelOptions fc2_options(const MlpOptions& o) {
  return {o.ffn_hidden, o.hidden, true, o.output_init_std, o.sequence_parallel};
}
}  // namespace

Mlp::Mlp(const std::string& name, const MlpOptions& o, std::uint64_t seed, TpGroup tp)
    : fc1_(name + ".fc1", fc1_options(o), seed, tp), fc2_(name + ".fc2", fc2_options(o), seed, tp) {}

ModuleCost Mlp::cost(const MlpOptions& o, std::int64_t rows, std::int64_t tp) {
  ModuleCost c = ColumnParallelLinear::cost(fc1_options(o), rows, tp);
  c += RowParallelLinear::cost(fc2_options(o), rows, tp);  // keeps GELU's output
  c.saved_elements = plan_add(c.saved_elements, plan_mul(rows, o.ffn_hidden / tp));  // GELU's input
  return c;
}

void Mlp::collect_parameters(std::vector<Parameter*>& out) {
  fc1_.collect_parameters(out);
  fc2_.collect_parameters(out);
}

Tensor Mlp::forward(StepContext& ctx, const Tensor& x) {
  Tensor h = fc1_.forward(ctx, x);
  Tensor a = h.new_empty(h.shape());
  ops::gelu_forward(h, a);
  if (ctx.training) ctx.store().save(this, SavedTensor{h});
  return fc2_.forward(ctx, a);
}

Tensor Mlp::backward(StepContext& ctx, const Tensor& dy) {
  Tensor da = fc2_.backward(ctx, dy);
  Tensor h = ctx.store().take<SavedTensor>(this).x;
  ops::gelu_backward(da, h, da);  // in place: da is ours
  return fc1_.backward(ctx, da);
}

}  // namespace tessera
