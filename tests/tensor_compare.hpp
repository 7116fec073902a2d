// Comparing tensors in tests: a relative difference ‖a − b‖ / ‖b‖ (any dtype, in double) and bitwise
// equality (f32; two undefined tensors are equal).
#pragma once
#include <algorithm>
#include <cmath>

#include "tessera/tensor.hpp"

namespace tessera::test {

inline double rel_diff(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return INFINITY;
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.item(i), y = b.item(i);
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  return a.shape() == b.shape() && std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>());
}

}  // namespace tessera::test
