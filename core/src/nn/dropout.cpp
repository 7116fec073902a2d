#include "tessera/nn/dropout.hpp"

#include "tessera/ops.hpp"

namespace tessera {

Tensor Dropout::apply(StepContext& ctx, const Tensor& x, const TokenRows& rows, bool backward) {
  if (!active(ctx)) return x;
  const std::int64_t C = x.size(x.dim() - 1), n = x.numel() / C;
  Tensor y = x.new_empty(x.shape());
  const Tensor x_rows = x.reshape({n, C});
  Tensor y_rows = y.reshape({n, C});
  const std::uint64_t seed = ctx.dropout_seed(site_);
  for (const TokenRows::Run& run : rows.runs(n)) {
    const Tensor in = x_rows.rows(run.row, run.row + run.count);
    Tensor out = y_rows.rows(run.row, run.row + run.count);
    if (backward)
      ops::dropout_backward(in, p_, seed, out, run.global * C);
    else
      ops::dropout_forward(in, p_, seed, out, run.global * C);
  }
  return y;
}

}  // namespace tessera
