// The full tensor from every tensor-parallel rank's shard: what saving and checkpoint conversion
// need to write a layout-independent file.
#pragma once
#include "tessera/nn/parameter.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera {

// `shard` is this rank's part of a tensor split on `dim` (-1: replicated, returned as is) into
// `blocks` blocks that are each split across tp (Parameter::tp_split_blocks, 2 for [K | V]).
// Returns the full tensor on every rank. Collective over tp.
Tensor gather_full_tensor(const Tensor& shard, int dim, int blocks, const TpGroup& tp);

// The same from shards already at hand (in tp-rank order), e.g. read from a checkpoint's per-rank
// files: no communication.
Tensor assemble_tp_shards(const std::vector<Tensor>& shards, int dim, int blocks);
// Tensor-parallel rank `rank`'s shard of `full` (host), split on `dim` into `blocks` blocks that are
// each split over `n` ranks: the inverse of assemble_tp_shards.
Tensor tp_shard_of(const Tensor& full, int dim, int blocks, int rank, int n);

// The full tensor of parameter `p` as a saved file holds it: gathered over tp, without the
// layout-dependent padding rows (Parameter::unpadded_rows). Collective over tp.
Tensor gather_saved_tensor(const Parameter& p, const Tensor& shard, const TpGroup& tp);

}  // namespace tessera
