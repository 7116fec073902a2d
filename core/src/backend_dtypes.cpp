#include <set>

#include "tessera/backend.hpp"
#include "tessera/half.hpp"

namespace tessera {

bool dtype_allowed(std::string_view op, DType dtype) {
  if (op == "copy" || op == "copy_2d" || op == "fill") return true;
  if (op == "arange_mod") return dtype == DType::i32;
  static const std::set<std::string_view> f32_only = {
      "softmax_cross_entropy", "cross_entropy_shard_stats", "cross_entropy_shard_grad", "cross_entropy_shard_rescale",
      "cross_entropy_shard_loss", "softmax", "masked_sum", "adam_step", "count_zeros"};
  if (f32_only.count(op)) return dtype == DType::f32;
  return is_float_dtype(dtype);
}

}  // namespace tessera
