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

namespace {
void require_ids_non_negative(const char* op, const Tensor& ids) {
  const std::int32_t* p = ids.data<std::int32_t>();
  for (std::int64_t i = 0; i < ids.numel(); ++i)
    if (p[i] < 0) throw ShapeError(fmt::format("{}: ids[{}] = {} is negative", op, i, p[i]));
}
}  // namespace

void embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& out) {
  const char* op = "embedding_shard_forward";
  require(op, "ids", ids, DType::i32);
  require(op, "table", table);
  require(op, "out", out);
  TESSERA_CHECK_SHAPE(table.dim() == 2, "table must be [rows, C], got {}", shape_str(table.shape()));
  const std::int64_t N = ids.numel(), C = table.size(1);
  require_rows_cols(op, "out", out, N, C);
  require_ids_non_negative(op, ids);
  cpu::embedding_shard_forward(ids.data<std::int32_t>(), table.data<float>(), first_id, table.size(0),
                               out.data<float>(), N, C);
}

void embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id, Tensor& dtable) {
  const char* op = "embedding_shard_backward";
  require(op, "ids", ids, DType::i32);
  require(op, "dout", dout);
  require(op, "dtable", dtable);
  TESSERA_CHECK_SHAPE(dtable.dim() == 2, "dtable must be [rows, C], got {}", shape_str(dtable.shape()));
  const std::int64_t N = ids.numel(), C = dtable.size(1);
  require_rows_cols(op, "dout", dout, N, C);
  require_ids_non_negative(op, ids);
  cpu::embedding_shard_backward(ids.data<std::int32_t>(), dout.data<float>(), first_id, dtable.size(0),
                                dtable.data<float>(), N, C);
}

}  // namespace tessera::ops
