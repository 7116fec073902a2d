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

}  // namespace tessera
