#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  detail::require_float(op, "a", a);
  require(op, "b", b, a.dtype());
  require(op, "out", out, a.dtype());
  require_numel(op, "b", b, a.numel(), "a " + shape_str(a.shape()));
  require_numel(op, "out", out, a.numel(), "a " + shape_str(a.shape()));
  detail::backend_for(op, {{"a", &a}, {"b", &b}, {"out", &out}}, a.dtype()).add(a, b, out);
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  const char* op = "axpy";
  detail::require_float(op, "x", x);
  require(op, "y", y, x.dtype());
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  detail::backend_for(op, {{"x", &x}, {"y", &y}}, x.dtype()).axpy(alpha, x, y);
}

void add_bias(Tensor& y, const Tensor& bias) {
  const char* op = "add_bias";
  detail::require_float(op, "y", y);
  require(op, "bias", bias, y.dtype());
  TESSERA_CHECK_SHAPE(bias.dim() == 1 && y.dim() >= 1 && y.size(-1) == bias.size(0),
                      "add_bias: y {} must end in the size of bias {}", shape_str(y.shape()), shape_str(bias.shape()));
  detail::rows_of(op, "y", y);
  detail::backend_for(op, {{"y", &y}, {"bias", &bias}}, y.dtype()).add_bias(y, bias);
}

void scale(Tensor& x, float s) {
  detail::require_float("scale", "x", x);
  detail::backend_for("scale", {{"x", &x}}, x.dtype()).scale(x, s);
}

void scale_rows(const Tensor& x, const Tensor& w, Tensor& out) {
  const char* op = "scale_rows";
  detail::require_float(op, "x", x);
  require(op, "out", out, x.dtype());
  require_numel(op, "out", out, x.numel(), "x " + shape_str(x.shape()));
  const std::int64_t N = detail::rows_of(op, "x", x);
  require(op, "w", w);
  require_numel(op, "w", w, N, "one weight per row of x " + shape_str(x.shape()));
  detail::backend_for(op, {{"x", &x}, {"w", &w}, {"out", &out}}, x.dtype()).scale_rows(x, w, out);
}

void row_dot(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "row_dot";
  detail::require_float(op, "a", a);
  require(op, "b", b, a.dtype());
  TESSERA_CHECK_SHAPE(a.shape() == b.shape(), "{}: a {} and b {} differ in shape", op, shape_str(a.shape()),
                      shape_str(b.shape()));
  const std::int64_t N = detail::rows_of(op, "a", a);
  require(op, "out", out);
  require_numel(op, "out", out, N, "one per row of a " + shape_str(a.shape()));
  detail::backend_for(op, {{"a", &a}, {"b", &b}, {"out", &out}}, a.dtype()).row_dot(a, b, out);
}

void copy(const Tensor& src, Tensor& dst) {
  const char* op = "copy";
  require(op, "src", src, src.dtype());  // any dtype, as long as both match
  require(op, "dst", dst, src.dtype());
  require_numel(op, "dst", dst, src.numel(), "src " + shape_str(src.shape()));
  if (src.device() == dst.device()) {
    detail::backend_for(op, {{"src", &src}, {"dst", &dst}}).copy(src, dst);
  } else {  // the one op that crosses devices: an explicit, counted transfer
    src.transfer_to(dst);
  }
}

void cast(const Tensor& src, Tensor& dst) {
  const char* op = "cast";
  detail::require_float(op, "src", src);
  detail::require_float(op, "dst", dst);
  require_numel(op, "dst", dst, src.numel(), "src " + shape_str(src.shape()));
  TESSERA_CHECK_SHAPE(!src.same_memory(dst) || src.dtype() == dst.dtype(), "cast: src {} and dst {} share memory",
                      src.str(), dst.str());
  Backend& backend = detail::backend_for(op, {{"src", &src}, {"dst", &dst}});
  for (DType t : {src.dtype(), dst.dtype()})
    if (t != DType::f32 && !backend.supports(op, t))
      throw ShapeError(fmt::format("cast: the {} backend does not run this op in {}", backend.name(), dtype_name(t)));
  backend.cast(src, dst);
}

Tensor cast_to(const Tensor& src, DType dtype) {
  if (src.dtype() == dtype) return src;
  Tensor dst = src.new_empty(src.shape(), dtype);
  cast(src, dst);
  return dst;
}

void copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
             std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows, std::int64_t cols) {
  const char* op = "copy_2d";
  require(op, "src", src, src.dtype());
  require(op, "dst", dst, src.dtype());
  // The last element each side touches, in 128 bits so that hostile sizes cannot wrap.
  auto end = [](std::int64_t offset, std::int64_t stride, std::int64_t r, std::int64_t c) {
    return static_cast<__int128>(offset) + static_cast<__int128>(stride) * (r - 1) + c;
  };
  TESSERA_CHECK_SHAPE(rows >= 0 && cols >= 0 && src_offset >= 0 && dst_offset >= 0 && src_stride >= cols &&
                          dst_stride >= cols,
                      "copy_2d: invalid block rows={} cols={} src_offset={} src_stride={} dst_offset={} dst_stride={}",
                      rows, cols, src_offset, src_stride, dst_offset, dst_stride);
  if (rows == 0 || cols == 0) return;
  TESSERA_CHECK_SHAPE(end(src_offset, src_stride, rows, cols) <= src.numel(),
                      "copy_2d: {} rows of {} from offset {} with stride {} overrun src {}", rows, cols, src_offset,
                      src_stride, src.str());
  TESSERA_CHECK_SHAPE(end(dst_offset, dst_stride, rows, cols) <= dst.numel(),
                      "copy_2d: {} rows of {} from offset {} with stride {} overrun dst {}", rows, cols, dst_offset,
                      dst_stride, dst.str());
  detail::backend_for(op, {{"src", &src}, {"dst", &dst}})
      .copy_2d(src, src_offset, src_stride, dst, dst_offset, dst_stride, rows, cols);
}

void arange_mod(Tensor& out, std::int64_t start, std::int64_t period) {
  const char* op = "arange_mod";
  require(op, "out", out, DType::i32);
  TESSERA_CHECK_SHAPE(period >= 1 && period <= (std::int64_t{1} << 31) && start >= 0,
                      "arange_mod: period {} must be in [1, 2³¹] and start {} ≥ 0", period, start);
  detail::backend_for(op, {{"out", &out}}).arange_mod(out, start % period, period);
}

namespace {
void require_scalar_out(const char* op, const Tensor& out) {
  require(op, "out", out, DType::f64);
  detail::require_numel(op, "out", out, 1, "a scalar");
}
}  // namespace

void sum(const Tensor& x, Tensor& out, bool accumulate) {
  const char* op = "sum";
  detail::require_float(op, "x", x);
  require_scalar_out(op, out);
  detail::backend_for(op, {{"x", &x}, {"out", &out}}, x.dtype()).sum(x, out, accumulate);
}

void sum_squares(const Tensor& x, Tensor& out, bool accumulate) {
  const char* op = "sum_squares";
  detail::require_float(op, "x", x);
  require_scalar_out(op, out);
  detail::backend_for(op, {{"x", &x}, {"out", &out}}, x.dtype()).sum_squares(x, out, accumulate);
}

void masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate) {
  const char* op = "masked_sum";
  require(op, "values", values);
  require(op, "mask", mask);
  require_numel(op, "mask", mask, values.numel(), "values " + shape_str(values.shape()));
  require_scalar_out(op, out);
  detail::backend_for(op, {{"values", &values}, {"mask", &mask}, {"out", &out}}).masked_sum(values, mask, out, accumulate);
}

void count_zeros(const Tensor& x, Tensor& out, bool accumulate) {
  const char* op = "count_zeros";
  require(op, "x", x);
  require_scalar_out(op, out);
  detail::backend_for(op, {{"x", &x}, {"out", &out}}).count_zeros(x, out, accumulate);
}

double sum(const Tensor& x) {
  Tensor out = x.defined() ? x.new_empty({1}, DType::f64) : Tensor();
  sum(x, out);
  return out.item();
}

double sum_squares(const Tensor& x) {
  Tensor out = x.defined() ? x.new_empty({1}, DType::f64) : Tensor();
  sum_squares(x, out);
  return out.item();
}

}  // namespace tessera::ops
