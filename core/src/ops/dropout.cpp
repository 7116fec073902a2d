#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

namespace {
void check_p(const char* op, float p) {
  if (!(p >= 0.0f && p <= 1.0f)) throw Error(fmt::format("{}: p = {} is not in [0, 1]", op, p));
}
void check_offset(const char* op, std::int64_t offset) {
  if (offset < 0) throw Error(fmt::format("{}: offset = {} is negative", op, offset));
}
}  // namespace

void dropout_forward(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset) {
  const char* op = "dropout_forward";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  check_p(op, p);
  check_offset(op, offset);
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).dropout(x, p, seed, y, offset);
}

void dropout_backward(const Tensor& dy, float p, std::uint64_t seed, Tensor& dx, std::int64_t offset) {
  const char* op = "dropout_backward";
  detail::require_float(op, "dy", dy);
  require(op, "dx", dx, dy.dtype());
  require_numel(op, "dx", dx, dy.numel(), "dy " + shape_str(dy.shape()));
  check_p(op, p);
  check_offset(op, offset);
  detail::backend_for(op, {{"dy", &dy}, {"dx", &dx}}, dy.dtype()).dropout(dy, p, seed, dx, offset);
}

}  // namespace tessera::ops
