#include "op_checks.hpp"
#include "tessera/kernels/cpu/embedding.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_ids_in_range;
using detail::require_rows_cols;
using detail::require_shape;

void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate) {
  const char* op = "embedding_forward";
  require(op, "ids", ids, DType::i32);
  require(op, "table", table);
  require(op, "out", out);
  TESSERA_CHECK_SHAPE(table.dim() == 2, "table must be [rows, C], got {}", shape_str(table.shape()));
  const std::int64_t N = ids.numel(), C = table.size(1);
  require_rows_cols(op, "out", out, N, C);
  require_ids_in_range(op, "ids", ids, table.size(0));
  cpu::embedding_forward(ids.data<std::int32_t>(), table.data<float>(), out.data<float>(), N, C,
                         accumulate);
}

void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  const char* op = "embedding_backward";
  require(op, "ids", ids, DType::i32);
  require(op, "dout", dout);
  require(op, "dtable", dtable);
  TESSERA_CHECK_SHAPE(dtable.dim() == 2, "dtable must be [rows, C], got {}", shape_str(dtable.shape()));
  const std::int64_t N = ids.numel(), C = dtable.size(1);
  require_rows_cols(op, "dout", dout, N, C);
  require_ids_in_range(op, "ids", ids, dtable.size(0));
  cpu::embedding_backward(ids.data<std::int32_t>(), dout.data<float>(), dtable.data<float>(), N, C);
}

}  // namespace tessera::ops
