// Helpers for the tensor-parallel tests: the full tensor from every tp rank's shard, and a relative
// difference ‖a − b‖ / ‖b‖.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera::test {

// `shard` is this rank's part of a tensor split on `dim` (-1: replicated, returned as is) into
// `blocks` blocks each split across tp (Parameter::tp_split_blocks). Returns the full tensor on
// every rank. Collective over tp.
inline Tensor gather_full(const Tensor& shard, int dim, int blocks, const TpGroup& tp) {
  const int n = tp_size(tp);
  if (dim < 0 || n == 1) return shard;
  Tensor gathered = Tensor::empty({n * shard.numel()});
  tp->all_gather(shard.reshape({shard.numel()}), gathered);
  // View the shard as [outer, blocks, sb, inner]; the full tensor as [outer, blocks, tp, sb, inner].
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

inline Tensor gather_full(const Parameter& p, const Tensor& shard, const TpGroup& tp) {
  return gather_full(shard, p.tp_split_dim, p.tp_split_blocks, tp);
}

inline double rel_diff(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  const float* x = a.data<float>();
  const float* y = b.data<float>();
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>());
}

}  // namespace tessera::test
