#include "tessera/nn/gather_parameter.hpp"

#include <algorithm>

namespace tessera {

Tensor gather_full_tensor(const Tensor& shard, int dim, int blocks, const TpGroup& tp) {
  const int n = tp_size(tp);
  if (dim < 0 || n == 1) return shard;
  Tensor gathered = Tensor::empty({n * shard.numel()});
  tp->all_gather(shard.reshape({shard.numel()}), gathered);
  // The shard viewed as [outer, blocks, sb, inner]; the full tensor as [outer, blocks, tp, sb, inner].
  std::int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= shard.size(d);
  for (std::int64_t d = dim + 1; d < shard.dim(); ++d) inner *= shard.size(d);
  const std::int64_t sb = shard.size(dim) / blocks;
  Shape full_shape = shard.shape();
  full_shape[static_cast<std::size_t>(dim)] *= n;
  Tensor full = Tensor::empty(full_shape);
  const float* g = gathered.data<float>();
  float* f = full.data<float>();
  for (int r = 0; r < n; ++r)
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t b = 0; b < blocks; ++b)
        for (std::int64_t j = 0; j < sb; ++j) {
          const float* src = g + r * shard.numel() + ((o * blocks + b) * sb + j) * inner;
          float* dst = f + (((o * blocks + b) * n + r) * sb + j) * inner;
          std::copy(src, src + inner, dst);
        }
  return full;
}

Tensor gather_saved_tensor(const Parameter& p, const Tensor& shard, const TpGroup& tp) {
  Tensor full = gather_full_tensor(shard, p.tp_split_dim, p.tp_split_blocks, tp);
  if (p.unpadded_rows < 0 || p.unpadded_rows == full.size(0)) return full;
  return full.rows(0, p.unpadded_rows).clone();
}

}  // namespace tessera
