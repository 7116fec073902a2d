#include "tessera/nn/gather_parameter.hpp"


#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

Tensor assemble_tp_shards(const std::vector<Tensor>& shards, int dim, int blocks) {
  const auto n = static_cast<std::int64_t>(shards.size());
  if (dim < 0 || n == 1) return shards.at(0);
  const Tensor& shard = shards[0];
  for (const Tensor& s : shards)
    TESSERA_CHECK_SHAPE(s.shape() == shard.shape() && s.dtype() == DType::f32,
                        "tensor-parallel shards differ: {} and {}", shard.str(), s.str());
  TESSERA_CHECK_SHAPE(dim < shard.dim() && shard.size(dim) % blocks == 0, "shard {} cannot be split on dim {} into {} blocks",
                      shard.str(), dim, blocks);
  // Each shard viewed as [outer, blocks, sb, inner]; the full tensor as [outer, blocks, tp, sb, inner].
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= shard.size(d);
  for (std::int64_t d = dim + 1; d < shard.dim(); ++d) inner *= shard.size(d);
  const std::int64_t sb = shard.size(dim) / blocks;
  Shape full_shape = shard.shape();
  full_shape[static_cast<std::size_t>(dim)] *= n;
  Tensor full = shard.new_empty(full_shape);
  // Block (o, b) of shard r — sb·inner contiguous elements — lands at block ((o·blocks + b)·n + r).
  const std::int64_t block = sb * inner;
  for (std::int64_t r = 0; r < n; ++r)
    ops::copy_2d(shards[static_cast<std::size_t>(r)], 0, block, full, r * block, n * block, outer * blocks, block);
  return full;
}

Tensor gather_full_tensor(const Tensor& shard, int dim, int blocks, const TpGroup& tp) {
  const int n = tp_size(tp);
  if (dim < 0 || n == 1) return shard;
  Tensor gathered = shard.new_empty({n * shard.numel()});
  tp->all_gather(shard.reshape({shard.numel()}), gathered);
  std::vector<Tensor> shards;
  for (int r = 0; r < n; ++r) shards.push_back(gathered.rows(r * shard.numel(), (r + 1) * shard.numel()).reshape(shard.shape()));
  return assemble_tp_shards(shards, dim, blocks);
}

Tensor gather_saved_tensor(const Parameter& p, const Tensor& shard, const TpGroup& tp) {
  Tensor full = gather_full_tensor(shard, p.tp_split_dim, p.tp_split_blocks, tp);
  if (p.unpadded_rows < 0 || p.unpadded_rows == full.size(0)) return full;
  return full.rows(0, p.unpadded_rows).clone();
}

Tensor tp_shard_of(const Tensor& full, int dim, int blocks, int rank, int n) {
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= full.size(d);
  for (std::int64_t d = dim + 1; d < full.dim(); ++d) inner *= full.size(d);
  const std::int64_t sb = full.size(dim) / blocks / n;  // a shard's part of each block
  Shape shape = full.shape();
  shape[static_cast<std::size_t>(dim)] /= n;
  Tensor shard = full.new_empty(shape);
  const std::int64_t block = sb * inner;
  // Block (o, b) of shard r sits at block ((o·blocks + b)·n + r) of the full tensor.
  ops::copy_2d(full, rank * block, n * block, shard, 0, block, outer * blocks, block);
  return shard;
}

}  // namespace tessera
