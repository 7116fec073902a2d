#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::last_dim;
using detail::require;
using detail::require_rows_cols;

void softmax(const Tensor& x, Tensor& out) {
  const char* op = "softmax";
  require(op, "x", x);
  require(op, "out", out);
  TESSERA_CHECK_SHAPE(x.dim() >= 1, "x must have at least one dim, got {}", shape_str(x.shape()));
  const std::int64_t C = last_dim(x), N = C == 0 ? 0 : x.numel() / C;
  require_rows_cols(op, "out", out, N, C);
  detail::backend_for(op, {{"x", &x}, {"out", &out}}).softmax(x, out);
}

}  // namespace tessera::ops
