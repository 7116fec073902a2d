#include "tessera/nn/mlp.hpp"

#include "tessera/ops.hpp"

namespace tessera {

namespace {
ColumnParallelOptions fc1_options(std::int64_t hidden, std::int64_t ffn_hidden, float init_std, bool sequence_parallel) {
  ColumnParallelOptions o{hidden, ffn_hidden, true, init_std};
  o.sequence_parallel = sequence_parallel;
  return o;
}
}  // namespace

Mlp::Mlp(const std::string& name, std::int64_t hidden, std::int64_t ffn_hidden, float init_std,
         float output_init_std, std::uint64_t seed, TpGroup tp, bool sequence_parallel)
    : fc1_(name + ".fc1", fc1_options(hidden, ffn_hidden, init_std, sequence_parallel), seed, tp),
      fc2_(name + ".fc2", {ffn_hidden, hidden, true, output_init_std, sequence_parallel}, seed, tp) {}

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
