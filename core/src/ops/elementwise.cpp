#include <cstring>

#include "op_checks.hpp"
#include "tessera/kernels/cpu/elementwise.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  require(op, "a", a);
  require(op, "b", b);
  require(op, "out", out);
  require_numel(op, "b", b, a.numel(), "a " + shape_str(a.shape()));
  require_numel(op, "out", out, a.numel(), "a " + shape_str(a.shape()));
  cpu::add(a.data<float>(), b.data<float>(), out.data<float>(), a.numel());
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  const char* op = "axpy";
  require(op, "x", x);
  require(op, "y", y);
  require_numel(op, "y", y, x.numel(), "x " + shape_str(x.shape()));
  cpu::axpy(alpha, x.data<float>(), y.data<float>(), x.numel());
}

void add_bias(Tensor& y, const Tensor& bias) {
  const char* op = "add_bias";
  require(op, "y", y);
  require(op, "bias", bias);
  TESSERA_CHECK_SHAPE(bias.dim() == 1 && y.dim() >= 1 && y.size(-1) == bias.size(0),
                      "add_bias: y {} must end in the size of bias {}", shape_str(y.shape()), shape_str(bias.shape()));
  cpu::add_bias(y.data<float>(), bias.data<float>(), detail::rows_of(op, "y", y), bias.size(0));
}

void scale(Tensor& x, float s) {
  require("scale", "x", x);
  cpu::scale(x.data<float>(), s, x.numel());
}

void copy(const Tensor& src, Tensor& dst) {
  const char* op = "copy";
  require(op, "src", src, src.dtype());  // any dtype, as long as both match
  require(op, "dst", dst, src.dtype());
  require_numel(op, "dst", dst, src.numel(), "src " + shape_str(src.shape()));
  if (src.dtype() == DType::f32)
    cpu::copy(src.data<float>(), dst.data<float>(), src.numel());
  else if (src.nbytes() > 0)
    std::memmove(dst.raw(), src.raw(), src.nbytes());
}

double sum(const Tensor& x) {
  require("sum", "x", x);
  return cpu::sum(x.data<float>(), x.numel());
}

double sum_squares(const Tensor& x) {
  require("sum_squares", "x", x);
  return cpu::sum_squares(x.data<float>(), x.numel());
}

}  // namespace tessera::ops
