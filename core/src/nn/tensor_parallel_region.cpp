#include "tessera/nn/tensor_parallel_region.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

TpGroup tp_group(const std::shared_ptr<const Parallel>& parallel) {
  return parallel ? parallel->groups.tp : nullptr;
}

std::int64_t tp_shard_size(std::int64_t full, const TpGroup& tp, const char* what) {
  const int n = tp_size(tp);
  if (full % n != 0)
    throw ConfigError(fmt::format("{} ({}) must be a multiple of the tensor-parallel size {}", what, full, n));
  return full / n;
}

void copy_to_tp_backward(Tensor& dx, const TpGroup& tp) {
  if (tp_size(tp) > 1) tp->all_reduce(dx);
}

void reduce_from_tp_forward(Tensor& y, const TpGroup& tp) {
  if (tp_size(tp) > 1) tp->all_reduce(y);
}

SequenceShard sequence_shard(std::int64_t tokens, const TpGroup& tp) {
  const int n = tp_size(tp);
  if (tokens % n != 0)
    throw ShapeError(fmt::format("sequence parallelism: {} token rows (batch × sequence length) cannot be split "
                                 "evenly over {} tensor-parallel ranks",
                                 tokens, n));
  return {tp_rank(tp) * (tokens / n), tokens / n};
}

namespace {

// x [..., C] as token rows [rows, C] (a view).
Tensor token_rows(const Tensor& x, const char* op) {
  TESSERA_CHECK_SHAPE(x.dim() >= 1 && x.size(-1) > 0, "{} expects token rows [..., C], got {}", op, x.str());
  return x.reshape({x.numel() / x.size(-1), x.size(-1)});
}

}  // namespace

Tensor all_gather_rows(const Tensor& x, const TpGroup& tp, const char* op) {
  Tensor rows = token_rows(x, op);
  const int n = tp_size(tp);
  if (n == 1) return rows;
  Tensor out = rows.new_empty({n * rows.size(0), rows.size(1)});
  tp->all_gather(rows, out);  // concatenation in rank order = the rows in order
  return out;
}

Tensor reduce_scatter_rows(const Tensor& x, const TpGroup& tp, const char* op) {
  Tensor rows = token_rows(x, op);
  const int n = tp_size(tp);
  if (n == 1) return rows;
  Tensor out = rows.new_empty({sequence_shard(rows.size(0), tp).rows, rows.size(1)});
  tp->reduce_scatter(rows, out);  // block r of the flat input is rank r's rows
  return out;
}

Tensor gather_from_sequence_parallel_forward(const Tensor& shard, const TpGroup& tp) {
  return all_gather_rows(shard, tp, "gather_from_sequence_parallel_forward");
}

Tensor gather_from_sequence_parallel_backward(const Tensor& dfull, const TpGroup& tp) {
  return reduce_scatter_rows(dfull, tp, "gather_from_sequence_parallel_backward");
}

Tensor reduce_scatter_to_sequence_parallel_forward(const Tensor& partial, const TpGroup& tp) {
  return reduce_scatter_rows(partial, tp, "reduce_scatter_to_sequence_parallel_forward");
}

Tensor reduce_scatter_to_sequence_parallel_backward(const Tensor& dshard, const TpGroup& tp) {
  return all_gather_rows(dshard, tp, "reduce_scatter_to_sequence_parallel_backward");
}

}  // namespace tessera
