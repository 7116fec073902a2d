// Helpers for the tensor-parallel tests: the full tensor from every tp rank's shard (core's
// gather_full_tensor), and a relative difference ‖a − b‖ / ‖b‖.
#pragma once
#include <cmath>
#include <cstdint>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/gather_parameter.hpp"

namespace tessera::test {

// The full tensor of parameter p (value or grad shard), padding included: what the one-process
// model's tensor is compared with.
inline Tensor gather_full(const Parameter& p, const Tensor& shard, const TpGroup& tp) {
  return gather_full_tensor(shard, p.tp_split_dim, p.tp_split_blocks, tp);
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
