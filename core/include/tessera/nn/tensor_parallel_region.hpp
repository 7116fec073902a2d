// Tensor-parallel regions as Megatron-LM's paired tiny ops (its "f" and "g"). Inside a region each
// rank of the tp group holds a slice of the work; the input is replicated on every rank and the
// output is the sum of the ranks' partial results:
//   copy_to_tp     (f): forward identity,        backward all_reduce(tp)  — enters a region: the
//                       input's gradient is the sum of every rank's partial gradient;
//   reduce_from_tp (g): forward all_reduce(tp),  backward identity        — leaves a region.
// ColumnParallelLinear = f → local matmul; RowParallelLinear = local matmul → g. Under sequence
// parallelism the pair becomes all_gather / reduce_scatter over the sequence dim (not built yet).
// A null group (one process) or a group of one rank makes every call free.
#pragma once
#include <cstdint>
#include <memory>

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

}  // namespace tessera
