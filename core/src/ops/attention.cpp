#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;
using detail::require_rows_cols;

namespace {

void check_shape(const char* op, const AttentionShape& s) {
  if (s.B < 1 || s.T < 1 || s.Hq < 1 || s.Hkv < 1 || s.D < 1 || s.Hq % s.Hkv != 0)
    throw ShapeError(fmt::format("{}: invalid AttentionShape B={} T={} Hq={} Hkv={} D={} (all must "
                                 "be ≥ 1 and Hq a multiple of Hkv)", op, s.B, s.T, s.Hq, s.Hkv, s.D));
}

}  // namespace

void attention_forward(const AttentionShape& s, const Tensor& q, const Tensor& kv, Tensor& out,
                       Tensor& probs) {
  const char* op = "attention_forward";
  check_shape(op, s);
  require(op, "q", q);
  require(op, "kv", kv);
  require(op, "out", out);
  require(op, "probs", probs);
  require_rows_cols(op, "q", q, s.B * s.T, s.Hq * s.D);
  require_rows_cols(op, "kv", kv, s.B * s.T, 2 * s.Hkv * s.D);
  require_rows_cols(op, "out", out, s.B * s.T, s.Hq * s.D);
  require_numel(op, "probs", probs, s.B * s.Hq * s.T * s.T, "[B, Hq, T, T]");
  detail::backend_for(op, {{"q", &q}, {"kv", &kv}, {"out", &out}, {"probs", &probs}})
      .attention_forward(s, q, kv, out, probs);
}

void attention_backward(const AttentionShape& s, const Tensor& dout, const Tensor& q,
                        const Tensor& kv, const Tensor& probs, Tensor& dq, Tensor& dkv) {
  const char* op = "attention_backward";
  check_shape(op, s);
  require(op, "dout", dout);
  require(op, "q", q);
  require(op, "kv", kv);
  require(op, "probs", probs);
  require(op, "dq", dq);
  require(op, "dkv", dkv);
  require_rows_cols(op, "dout", dout, s.B * s.T, s.Hq * s.D);
  require_rows_cols(op, "q", q, s.B * s.T, s.Hq * s.D);
  require_rows_cols(op, "kv", kv, s.B * s.T, 2 * s.Hkv * s.D);
  require_numel(op, "probs", probs, s.B * s.Hq * s.T * s.T, "[B, Hq, T, T]");
  require_rows_cols(op, "dq", dq, s.B * s.T, s.Hq * s.D);
  require_rows_cols(op, "dkv", dkv, s.B * s.T, 2 * s.Hkv * s.D);
  detail::backend_for(op, {{"dout", &dout}, {"q", &q}, {"kv", &kv}, {"probs", &probs}, {"dq", &dq}, {"dkv", &dkv}})
      .attention_backward(s, dout, q, kv, probs, dq, dkv);
}

}  // namespace tessera::ops
