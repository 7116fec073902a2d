// Helpers for the tensor-parallel tests: the full tensor from every tp rank's shard (core's
// gather_full_tensor); rel_diff and bitwise_equal come from tests/tensor_compare.hpp.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/gather_parameter.hpp"
#include "tensor_compare.hpp"

namespace tessera::test {

// The full tensor of parameter p (value or grad shard), padding included: what the one-process
// model's tensor is compared with.
inline Tensor gather_full(const Parameter& p, const Tensor& shard, const TpGroup& tp) {
  return gather_full_tensor(shard, p.tp_split_dim, p.tp_split_blocks, tp);
}

}  // namespace tessera::test
