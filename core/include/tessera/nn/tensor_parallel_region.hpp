// Tensor-parallel regions as Megatron-LM's paired tiny ops (its "f" and "g"). Inside a region each
// rank of the tp group holds a slice of the work; the input is replicated on every rank and the
// output is the sum of the ranks' partial results:
//   copy_to_tp     (f): forward identity,        backward all_reduce(tp)  — enters a region: the
//                       input's gradient is the sum of every rank's partial gradient;
//   reduce_from_tp (g): forward all_reduce(tp),  backward identity        — leaves a region.
// ColumnParallelLinear = f → local matmul; RowParallelLinear = local matmul → g.
// A null group (one process) or a group of one rank makes every call free.
//
// Sequence parallelism (Megatron-LM) changes what lies *between* the regions: instead of a
// replicated copy, each rank holds 1/tp of the token rows. An activation [..., C] is seen as
// N = numel/C token rows (for [B,T,C], the flattened B·T tokens) and rank r holds rows
// [r·N/tp, (r+1)·N/tp) as a [N/tp, C] tensor — with B = 1 exactly Megatron's split of the sequence.
// Everything there (LayerNorm, dropout, residual adds) is token-wise, so it runs on the shard alone.
// The pair becomes:
//   gather_from_sequence_parallel       (f): forward all_gather of the rows,  backward reduce_scatter
//   reduce_scatter_to_sequence_parallel (g): forward reduce_scatter of rows,   backward all_gather
// which moves the same bytes as one all-reduce (an all-reduce is a reduce-scatter + all-gather).
#pragma once
#include <cstdint>
#include <memory>

#include "tessera/nn/step_context.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/parallel/parallel.hpp"

namespace tessera {

using TpGroup = std::shared_ptr<Communicator>;

// The tp group of `parallel` (null for a one-process run).
TpGroup tp_group(const std::shared_ptr<const Parallel>& parallel);
inline int tp_size(const TpGroup& tp) { return tp ? tp->size() : 1; }
inline int tp_rank(const TpGroup& tp) { return tp ? tp->rank() : 0; }
// full / tp_size, or a ConfigError naming `what` when tp does not divide it.
std::int64_t tp_shard_size(std::int64_t full, const TpGroup& tp, const char* what);

inline const Tensor& copy_to_tp_forward(const Tensor& x) { return x; }
void copy_to_tp_backward(Tensor& dx, const TpGroup& tp);  // in place
void reduce_from_tp_forward(Tensor& y, const TpGroup& tp);  // in place
inline const Tensor& reduce_from_tp_backward(const Tensor& dy) { return dy; }

// ---- sequence parallelism ---------------------------------------------------------------------

// Whether a block built with sequence parallelism runs on token shards in this step: only with
// more than one tp rank, and not when the step turns it off (StepContext::allow_sequence_parallel:
// generation, whose B·T need not divide tp, runs the replicated layout, which is exact too).
inline bool sequence_parallel_applies(bool built_with, const TpGroup& tp, const StepContext& ctx) {
  return built_with && ctx.allow_sequence_parallel && tp_size(tp) > 1;
}

// This rank's token rows of `tokens` rows: [first, first + rows). A ShapeError when tp does not
// divide `tokens` (configurations are checked earlier: seq_length % tp == 0).
struct SequenceShard {
  std::int64_t first = 0, rows = 0;
};
SequenceShard sequence_shard(std::int64_t tokens, const TpGroup& tp);

// Row collectives over any group (null or one rank: x as rows [rows, C], no copy); `op` names the
// caller in shape errors. all_gather_rows: [n, C] → [size·n, C], every rank's rows in rank order;
// reduce_scatter_rows: [size·n, C] → [n, C], block r summed over the group on rank r.
Tensor all_gather_rows(const Tensor& x, const TpGroup& group, const char* op);
Tensor reduce_scatter_rows(const Tensor& x, const TpGroup& group, const char* op);

// f: shard [..., C] (n rows) → [tp·n, C], every rank's rows in rank order.
Tensor gather_from_sequence_parallel_forward(const Tensor& shard, const TpGroup& tp);
// f backward: d(full) [..., C] (N rows, this rank's partial gradient) → [N/tp, C], the sum over tp
// of every rank's gradient for this rank's rows.
Tensor gather_from_sequence_parallel_backward(const Tensor& dfull, const TpGroup& tp);
// g: partial [..., C] (N rows, this rank's partial sums) → [N/tp, C], this rank's rows summed over tp.
Tensor reduce_scatter_to_sequence_parallel_forward(const Tensor& partial, const TpGroup& tp);
// g backward: d(shard) [..., C] (n rows) → [tp·n, C], the full gradient on every rank.
Tensor reduce_scatter_to_sequence_parallel_backward(const Tensor& dshard, const TpGroup& tp);

}  // namespace tessera
