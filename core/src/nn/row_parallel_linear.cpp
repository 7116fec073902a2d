#include "tessera/nn/row_parallel_linear.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"

namespace tessera {

RowParallelLinear::RowParallelLinear(std::string name, const RowParallelOptions& o, std::uint64_t seed, TpGroup tp)
    : tp_(std::move(tp)),
      sequence_parallel_(o.sequence_parallel),
      reduce_output_(o.reduce_output),
      keep_input_(o.keep_input),
      weight_(name + ".weight", {o.out, tp_shard_size(o.in, tp_, (name + " input size").c_str())}) {
  const std::int64_t cols = weight_.value.size(1);
  if (tp_size(tp_) == 1) {
    init_normal(weight_.value, o.init_std, seed, weight_.name);
  } else {
    // A shard of columns is not contiguous in the full tensor: one row at a time, at its offset.
    for (std::int64_t i = 0; i < o.out; ++i) {
      Tensor row = weight_.value.rows(i, i + 1);
      init_normal(row, o.init_std, seed, weight_.name, i * o.in + tp_rank(tp_) * cols);
    }
  }
  weight_.tp_split_dim = 1;
  if (o.sequence_parallel && !o.reduce_output)
    throw ConfigError(name + ": a row-parallel layer that leaves its output unreduced cannot scatter it over "
                             "sequence-parallel ranks");
  if (o.bias) bias_ = std::make_unique<Parameter>(name + ".bias", Shape{o.out}, /*decay=*/false);
}

ModuleCost RowParallelLinear::cost(const RowParallelOptions& o, std::int64_t rows, std::int64_t tp) {
  ModuleCost c;
  c.parameters = plan_add(plan_mul(o.out, o.in / tp), o.bias ? o.out : 0);
  c.parameter_tensors = o.bias ? 2 : 1;
  c.saved_elements = o.keep_input ? plan_mul(rows, o.in / tp) : 0;
  if (tp == 1 || !o.reduce_output) return c;
  const CollectiveCount output{1, plan_mul(rows, o.out)};
  if (o.sequence_parallel) {
    c.forward.reduce_scatter += output;
    c.backward.all_gather += output;  // dy's rows
  } else {
    c.forward.all_reduce += output;
  }
  return c;
}

void RowParallelLinear::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (bias_) out.push_back(bias_.get());
}

Tensor RowParallelLinear::forward(StepContext& ctx, const Tensor& x) {
  Shape shape = x.shape();
  shape.back() = weight_.value.size(0);
  Tensor y = x.new_empty(shape);
  if (tp_size(tp_) == 1) {
    ops::linear_forward(x, weight_.weight(), bias_ ? &bias_->weight() : nullptr, y);
  } else if (!reduce_output_) {
    ops::linear_forward(x, weight_.weight(), bias_ && tp_rank(tp_) == 0 ? &bias_->weight() : nullptr, y);
  } else {
    ops::linear_forward(x, weight_.weight(), nullptr, y);
    if (sequence_parallel_applies(sequence_parallel_, tp_, ctx))
      y = reduce_scatter_to_sequence_parallel_forward(y, tp_);
    else
      reduce_from_tp_forward(y, tp_);
    if (bias_) ops::add_bias(y, bias_->weight());
  }
  if (ctx.training && keep_input_) ctx.store().save(this, SavedTensor{x});
  return y;
}

Tensor RowParallelLinear::backward(StepContext& ctx, const Tensor& dy) {
  if (!keep_input_) throw Error(fmt::format("{}: built without keeping its input, its backward needs it given", weight_.name));
  return backward(ctx, dy, ctx.store().take<SavedTensor>(this).x);
}

Tensor RowParallelLinear::backward(StepContext& ctx, const Tensor& dy, const Tensor& x) {
  Tensor dx = x.new_empty(x.shape());
  const Tensor dy_full = sequence_parallel_applies(sequence_parallel_, tp_, ctx)
                             ? reduce_scatter_to_sequence_parallel_backward(dy, tp_)
                             : reduce_from_tp_backward(dy);
  ops::linear_backward(dy_full, x, weight_.weight(), &dx, &weight_.grad, bias_ ? &bias_->grad : nullptr);
  ctx.grad_ready(weight_);
  if (bias_) ctx.grad_ready(*bias_);
  return dx;
}

}  // namespace tessera
