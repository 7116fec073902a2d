#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_rows_cols;
using detail::require_shape;

void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate) {
  const char* op = "embedding_forward";
  require(op, "ids", ids, DType::i32);
  detail::require_float(op, "table", table);
  require(op, "out", out, table.dtype());
  TESSERA_CHECK_SHAPE(table.dim() == 2, "table must be [rows, C], got {}", shape_str(table.shape()));
  const std::int64_t N = ids.numel(), C = table.size(1);
  require_rows_cols(op, "out", out, N, C);
  detail::backend_for(op, {{"ids", &ids}, {"table", &table}, {"out", &out}}, table.dtype()).embedding_forward(ids, table, out, accumulate);
}

void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  const char* op = "embedding_backward";
  require(op, "ids", ids, DType::i32);
  detail::require_float(op, "dout", dout);
  detail::require_f32_or(op, "dtable", dtable, dout);  // gradients accumulate in f32
  TESSERA_CHECK_SHAPE(dtable.dim() == 2, "dtable must be [rows, C], got {}", shape_str(dtable.shape()));
  const std::int64_t N = ids.numel(), C = dtable.size(1);
  require_rows_cols(op, "dout", dout, N, C);
  detail::backend_for(op, {{"ids", &ids}, {"dout", &dout}, {"dtable", &dtable}}, dout.dtype()).embedding_backward(ids, dout, dtable);
}

void embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& out) {
  const char* op = "embedding_shard_forward";
  require(op, "ids", ids, DType::i32);
  detail::require_float(op, "table", table);
  require(op, "out", out, table.dtype());
  TESSERA_CHECK_SHAPE(table.dim() == 2, "table must be [rows, C], got {}", shape_str(table.shape()));
  const std::int64_t N = ids.numel(), C = table.size(1);
  require_rows_cols(op, "out", out, N, C);
  TESSERA_CHECK_SHAPE(first_id >= 0, "{}: first_id {} is negative", op, first_id);
  detail::backend_for(op, {{"ids", &ids}, {"table", &table}, {"out", &out}}, table.dtype()).embedding_shard_forward(ids, table, first_id, out);
}

void embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id, Tensor& dtable) {
  const char* op = "embedding_shard_backward";
  require(op, "ids", ids, DType::i32);
  detail::require_float(op, "dout", dout);
  detail::require_f32_or(op, "dtable", dtable, dout);  // gradients accumulate in f32
  TESSERA_CHECK_SHAPE(dtable.dim() == 2, "dtable must be [rows, C], got {}", shape_str(dtable.shape()));
  const std::int64_t N = ids.numel(), C = dtable.size(1);
  require_rows_cols(op, "dout", dout, N, C);
  TESSERA_CHECK_SHAPE(first_id >= 0, "{}: first_id {} is negative", op, first_id);
  detail::backend_for(op, {{"ids", &ids}, {"dout", &dout}, {"dtable", &dtable}}, dout.dtype()).embedding_shard_backward(ids, dout, first_id, dtable);
}

}  // namespace tessera::ops
