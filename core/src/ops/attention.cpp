#include "op_checks.hpp"
#include "tessera/ops.hpp"

namespace tessera::ops {

using detail::require;
using detail::require_numel;
using detail::require_rows_cols;
using detail::require_shape;

namespace {

void check_shape(const char* op, const AttentionShape& s, bool queries_placed = false) {
  if (s.B < 1 || s.Tq < 1 || s.Tk < 1 || s.Hq < 1 || s.Hkv < 1 || s.D < 1 || s.Hq % s.Hkv != 0)
    throw ShapeError(fmt::format("{}: invalid AttentionShape B={} Tq={} Tk={} Hq={} Hkv={} D={} (all must be ≥ 1 "
                                 "and Hq a multiple of Hkv)", op, s.B, s.Tq, s.Tk, s.Hq, s.Hkv, s.D));
  if (!(s.dropout >= 0.0f && s.dropout < 1.0f) || s.head_offset < 0 || s.heads_total < 0 ||
      (s.heads_total > 0 && s.head_offset + s.Hq > s.heads_total))
    throw ShapeError(fmt::format("{}: invalid dropout fields of AttentionShape: dropout={} (needs [0, 1)), head_offset={}, "
                                 "heads_total={} (this call's Hq={} heads must lie within the layer's)",
                                 op, s.dropout, s.head_offset, s.heads_total, s.Hq));
  if (s.window_left < -1 || (s.window_left >= 0 && !s.causal))
    throw ShapeError(fmt::format("{}: invalid AttentionShape window_left={} (−1 for none, or ≥ 0 with causal attention)",
                                 op, s.window_left));
  if (s.causal && s.Tq != s.Tk && !queries_placed)
    throw ShapeError(fmt::format("{}: causal attention needs as many queries as keys, got Tq={} Tk={} (or the "
                                 "queries' positions among the keys: AttentionMask::query_position)", op, s.Tq, s.Tk));
}

// The inputs both passes read, and the saved lse.
void check_inputs(const char* op, const AttentionShape& s, const Tensor& q, const Tensor& kv,
                  const AttentionMask& mask, const Tensor& lse) {
  detail::require_float(op, "q", q);
  require(op, "kv", kv, q.dtype());
  require(op, "lse", lse);  // f32 whatever q's dtype
  require_rows_cols(op, "q", q, s.B * s.Tq, s.Hq * s.D);
  require_rows_cols(op, "kv", kv, s.B * s.Tk, 2 * s.Hkv * s.D);
  require_numel(op, "lse", lse, s.B * s.Hq * s.Tq, "[B, Hq, Tq]");
  if (mask.key_mask.defined()) {
    require(op, "key_mask", mask.key_mask, DType::u8);
    require_shape(op, "key_mask", mask.key_mask, {s.B, s.Tk});
  }
  if (mask.first_key.defined()) {
    require(op, "first_key", mask.first_key, DType::i32);
    require_shape(op, "first_key", mask.first_key, {s.B, s.Tq});
  }
  if (mask.sink.defined()) {
    require(op, "sink", mask.sink);  // f32 whatever q's dtype
    require_shape(op, "sink", mask.sink, {s.Hq});
  }
  if (mask.query_position.defined()) {
    if (!s.causal)
      throw ShapeError(fmt::format("{}: 'query_position' places the queries of causal attention; this call is not causal",
                                   op));
    require(op, "query_position", mask.query_position, DType::i32);
    require_shape(op, "query_position", mask.query_position, {s.Tq});
  }
}

}  // namespace

void attention_forward(const AttentionShape& s, const Tensor& q, const Tensor& kv, const AttentionMask& mask,
                       Tensor& out, Tensor& lse) {
  const char* op = "attention_forward";
  check_shape(op, s, mask.query_position.defined());
  check_inputs(op, s, q, kv, mask, lse);
  require(op, "out", out, q.dtype());
  require_rows_cols(op, "out", out, s.B * s.Tq, s.Hq * s.D);
  detail::backend_for(op,
                      {{"q", &q}, {"kv", &kv}, {"key_mask", &mask.key_mask}, {"first_key", &mask.first_key},
                       {"sink", &mask.sink}, {"query_position", &mask.query_position}, {"out", &out}, {"lse", &lse}},
                      q.dtype())
      .attention_forward(s, q, kv, mask, out, lse);
}

void attention_backward(const AttentionShape& s, const Tensor& dout, const Tensor& q, const Tensor& kv,
                        const AttentionMask& mask, const Tensor& out, const Tensor& lse, Tensor& dq, Tensor& dkv) {
  const char* op = "attention_backward";
  check_shape(op, s, mask.query_position.defined());
  check_inputs(op, s, q, kv, mask, lse);
  for (auto [name, t] : {std::pair{"dout", &dout}, {"out", &out}, {"dq", &dq}, {"dkv", &dkv}})
    require(op, name, *t, q.dtype());
  require_rows_cols(op, "dout", dout, s.B * s.Tq, s.Hq * s.D);
  require_rows_cols(op, "out", out, s.B * s.Tq, s.Hq * s.D);
  require_rows_cols(op, "dq", dq, s.B * s.Tq, s.Hq * s.D);
  require_rows_cols(op, "dkv", dkv, s.B * s.Tk, 2 * s.Hkv * s.D);
  detail::backend_for(op,
                      {{"dout", &dout}, {"q", &q}, {"kv", &kv}, {"key_mask", &mask.key_mask},
                       {"first_key", &mask.first_key}, {"sink", &mask.sink}, {"query_position", &mask.query_position},
                       {"out", &out}, {"lse", &lse}, {"dq", &dq}, {"dkv", &dkv}},
                      q.dtype())
      .attention_backward(s, dout, q, kv, mask, out, lse, dq, dkv);
}

void attention_sink_backward(const AttentionShape& s, const Tensor& dout, const Tensor& out, const Tensor& lse,
                             const Tensor& sink, Tensor& dsink) {
  const char* op = "attention_sink_backward";
  check_shape(op, s, /*queries_placed=*/true);  // reads no keys: any Tq
  detail::require_float(op, "out", out);
  require(op, "dout", dout, out.dtype());
  require_rows_cols(op, "dout", dout, s.B * s.Tq, s.Hq * s.D);
  require_rows_cols(op, "out", out, s.B * s.Tq, s.Hq * s.D);
  require(op, "lse", lse);
  require_numel(op, "lse", lse, s.B * s.Hq * s.Tq, "[B, Hq, Tq]");
  require(op, "sink", sink);
  require_shape(op, "sink", sink, {s.Hq});
  require(op, "dsink", dsink);
  require_shape(op, "dsink", dsink, {s.Hq});
  detail::backend_for(op, {{"dout", &dout}, {"out", &out}, {"lse", &lse}, {"sink", &sink}, {"dsink", &dsink}},
                      out.dtype())
      .attention_sink_backward(s, dout, out, lse, sink, dsink);
}

}  // namespace tessera::ops
