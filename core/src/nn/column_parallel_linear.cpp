#include "tessera/nn/column_parallel_linear.hpp"

#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {
// Rows [0, out) of a [out, in] tensor split into `blocks` blocks, each split across tp: the local
// row count, checked for divisibility.
std::int64_t local_rows(const ColumnParallelOptions& o, const TpGroup& tp, const std::string& name) {
  if (o.blocks < 1 || o.out % o.blocks != 0)
    throw ConfigError(fmt::format("{}: output size {} is not {} equal blocks", name, o.out, o.blocks));
  return o.blocks * tp_shard_size(o.out / o.blocks, tp, (name + " output size per block").c_str());
}
}  // namespace

ColumnParallelLinear::ColumnParallelLinear(std::string name, const ColumnParallelOptions& o,
                                           std::uint64_t seed, TpGroup tp)
    : o_(o), tp_(std::move(tp)), weight_(name + ".weight", {local_rows(o, tp_, name), o.in}) {
  if (o.gather_output && o.blocks != 1)
    throw ConfigError(fmt::format("{}: gather_output needs blocks = 1", name));
  const std::int64_t block_rows = weight_.value.size(0) / o.blocks;  // local rows per block
  const std::int64_t full_block_rows = o.out / o.blocks;
  for (int b = 0; b < o.blocks; ++b) {
    Tensor part = weight_.value.rows(b * block_rows, (b + 1) * block_rows);
    init_normal(part, o.init_std, seed, weight_.name,
                (b * full_block_rows + tp_rank(tp_) * block_rows) * o.in);
  }
  weight_.tp_split_dim = 0;
  weight_.tp_split_blocks = o.blocks;
  if (o.bias) {
    bias_ = std::make_unique<Parameter>(name + ".bias", Shape{weight_.value.size(0)}, /*decay=*/false);
    bias_->tp_split_dim = 0;
    bias_->tp_split_blocks = o.blocks;
  }
}

ModuleCost ColumnParallelLinear::cost(const ColumnParallelOptions& o, std::int64_t rows, std::int64_t tp) {
  const std::int64_t local = o.out / tp;  // the constructor checks the divisions
  const bool sp = o.sequence_parallel && tp > 1;
  ModuleCost c;
  c.parameters = plan_add(plan_mul(local, o.in), o.bias ? local : 0);
  c.parameter_tensors = o.bias ? 2 : 1;
  c.saved_elements = o.keep_input ? plan_mul(sp ? rows / tp : rows, o.in) : 0;
  if (tp == 1) return c;
  const CollectiveCount input{1, plan_mul(rows, o.in)};
  if (sp) {
    c.forward.all_gather += input;   // the input rows
    c.backward.all_gather += input;  // the saved (or recomputed) shard again
  }
  if (o.gather_output) c.forward.all_gather += {1, plan_mul(rows, o.out)};
  if (o.reduce_input_grad) (sp ? c.backward.reduce_scatter : c.backward.all_reduce) += input;
  return c;
}

void ColumnParallelLinear::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&weight_);
  if (bias_) out.push_back(bias_.get());
}

Tensor ColumnParallelLinear::forward(StepContext& ctx, const Tensor& x_in) {
  const bool sp = sequence_parallel_applies(o_.sequence_parallel, tp_, ctx);
  const Tensor x = sp ? gather_from_sequence_parallel_forward(x_in, tp_) : copy_to_tp_forward(x_in);
  Shape shape = x.shape();
  shape.back() = weight_.value.size(0);
  Tensor y = x.new_empty(shape);
  ops::linear_forward(x, weight_.weight(), bias_ ? &bias_->weight() : nullptr, y);
  if (ctx.training && o_.keep_input) ctx.store().save(this, SavedTensor{x_in});  // under sequence parallelism: the shard only
  const int n = tp_size(tp_);
  if (!o_.gather_output || n == 1) return y;
  // all_gather concatenates whole tensors: [tp, rows, out/tp] → interleave into [rows, out].
  const std::int64_t cols = y.size(-1), rows = y.numel() / cols;
  Tensor gathered = y.new_empty({n * rows * cols});
  tp_->all_gather(y.reshape({rows * cols}), gathered);
  shape.back() = o_.out;
  Tensor full = y.new_empty(shape);
  for (int r = 0; r < n; ++r) ops::copy_2d(gathered, r * rows * cols, cols, full, r * cols, o_.out, rows, cols);
  return full;
}

Tensor ColumnParallelLinear::backward(StepContext& ctx, const Tensor& dy_in) {
  return backward_with_input(ctx, dy_in, ctx.store().take<SavedTensor>(this).x);
}

Tensor ColumnParallelLinear::backward_with_input(StepContext& ctx, const Tensor& dy_in, const Tensor& saved) {
  const bool sp = sequence_parallel_applies(o_.sequence_parallel, tp_, ctx);
  const Tensor x = sp ? gather_from_sequence_parallel_forward(saved, tp_) : saved;
  Tensor dy = dy_in;
  if (o_.gather_output && tp_size(tp_) > 1) {
    // The gradient of the gather is this rank's columns of dy.
    const std::int64_t cols = weight_.value.size(0), rows = dy_in.numel() / o_.out;
    Shape shape = dy_in.shape();
    shape.back() = cols;
    dy = dy_in.new_empty(shape);
    ops::copy_2d(dy_in, tp_rank(tp_) * cols, o_.out, dy, 0, cols, rows, cols);
  }
  Tensor dx = x.new_empty(x.shape());
  ops::linear_backward(dy, x, weight_.weight(), &dx, &weight_.grad, bias_ ? &bias_->grad : nullptr);
  // Final for the iteration on the last microbatch: the dp all-reduce may start before the tp one below.
  ctx.grad_ready(weight_);
  if (bias_) ctx.grad_ready(*bias_);
  if (!o_.reduce_input_grad) return dx;
  if (sp) return gather_from_sequence_parallel_backward(dx, tp_);
  copy_to_tp_backward(dx, tp_);
  return dx;
}

}  // namespace tessera
