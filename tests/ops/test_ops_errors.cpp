// Wrong shapes, dtypes and arguments are reported as tessera errors naming the op and the shapes.
#include <catch2/catch.hpp>

#include <tuple>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

using namespace tessera;
using Catch::Matchers::Contains;

TEST_CASE("ops reject wrong shapes and dtypes with a clear message", "[unit]") {
  Tensor x = Tensor::zeros({4, 8}), w = Tensor::zeros({16, 8}), y = Tensor::zeros({4, 16});
  Tensor bad_w = Tensor::zeros({16, 7});
  REQUIRE_THROWS_WITH(ops::linear_forward(x, bad_w, nullptr, y),
                      Contains("linear_forward") && Contains("[4, 8]") && Contains("[16, 7]"));
  REQUIRE_THROWS_AS(ops::linear_forward(x, bad_w, nullptr, y), ShapeError);
  Tensor bad_y = Tensor::zeros({4, 15});
  REQUIRE_THROWS_WITH(ops::linear_forward(x, w, nullptr, bad_y), Contains("'y'") && Contains("[4, 15]"));
  Tensor bias = Tensor::zeros({15});
  REQUIRE_THROWS_AS(ops::linear_forward(x, w, &bias, y), ShapeError);
  Tensor dw = Tensor::zeros({8, 16});
  REQUIRE_THROWS_WITH(ops::linear_backward(y, x, w, nullptr, &dw, nullptr),
                      Contains("linear_backward") && Contains("'dw'"));

  Tensor out = Tensor::zeros({4, 4});
  REQUIRE_THROWS_WITH(ops::matmul(x, false, x, false, out), Contains("matmul") && Contains("inner dims"));
  REQUIRE_NOTHROW(ops::matmul(x, false, x, true, out));

  Tensor ids_f = Tensor::zeros({4});
  Tensor table = Tensor::zeros({10, 8}), emb = Tensor::zeros({4, 8});
  REQUIRE_THROWS_WITH(ops::embedding_forward(ids_f, table, emb), Contains("i32"));
  Tensor ids = Tensor::from<std::int32_t>({4}, {0, 3, 10, 1});
  REQUIRE_THROWS_WITH(ops::embedding_forward(ids, table, emb), Contains("ids[2] = 10"));

  Tensor logits = Tensor::zeros({4, 5}), losses = Tensor::zeros({4});
  Tensor targets = Tensor::from<std::int32_t>({4}, {0, 1, 5, 2});
  REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(logits, targets, Tensor(), losses, true, 1.0f),
                      Contains("softmax_cross_entropy") && Contains("out of range"));
  Tensor short_losses = Tensor::zeros({3});
  Tensor ok_targets = Tensor::from<std::int32_t>({4}, {0, 1, 4, 2});
  REQUIRE_THROWS_AS(ops::softmax_cross_entropy(logits, ok_targets, Tensor(), short_losses, true, 1.0f), ShapeError);

  ops::AttentionShape s{1, 4, 4, 4, 3, 8, true};  // Hq not a multiple of Hkv
  Tensor q = Tensor::zeros({1, 4, 32}), kv = Tensor::zeros({1, 4, 48}), o = Tensor::zeros({1, 4, 32});
  Tensor lse = Tensor::zeros({1, 4, 4});
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv, Tensor(), o, lse), Contains("multiple of Hkv"));
  s.Hkv = 2;
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv, Tensor(), o, lse), Contains("'kv'") && Contains("[1, 4, 48]"));
  // The probabilities' dropout: p in [0, 1); this call's heads within the layer's.
  for (auto [p, offset, total] : {std::tuple{1.0f, 0, 0}, {-0.1f, 0, 0}, {0.1f, 2, 4}, {0.1f, -1, 0}}) {
    ops::AttentionShape d = s;
    d.dropout = p;
    d.head_offset = offset;
    d.heads_total = total;
    REQUIRE_THROWS_WITH(ops::attention_forward(d, q, kv, Tensor(), o, lse), Contains("invalid dropout fields"));
  }
  // The sliding window: −1 (none) or ≥ 0 keys back, with causal attention only.
  for (auto [window, causal] : {std::pair{std::int64_t{-2}, true}, {std::int64_t{3}, false}}) {
    ops::AttentionShape w = s;
    w.window_left = window;
    w.causal = causal;
    REQUIRE_THROWS_WITH(ops::attention_forward(w, q, kv, Tensor(), o, lse),
                        Contains("window_left=" + std::to_string(window)) && Contains("causal"));
  }
  s.Tk = 5;  // causal needs Tq = Tk; cross-attention (not causal) allows it
  const Tensor kv5 = Tensor::zeros({1, 5, 32});
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, Tensor(), o, lse),
                      Contains("attention_forward") && Contains("Tq=4 Tk=5"));
  s.causal = false;
  Tensor mask_i32 = Tensor::zeros({1, 5}, DType::i32), mask_short = Tensor::zeros({1, 4}, DType::u8);
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, mask_i32, o, lse),
                      Contains("'key_mask'") && Contains("u8"));
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, mask_short, o, lse),
                      Contains("'key_mask'") && Contains("[1, 5]"));
  // First keys: i32 [B, Tq] (one per query, not per key).
  const Tensor first_u8 = Tensor::zeros({1, 4}, DType::u8), first_keys = Tensor::zeros({1, 5}, DType::i32);
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, ops::AttentionMask(Tensor(), first_u8), o, lse),
                      Contains("'first_key'") && Contains("i32"));
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, ops::AttentionMask(Tensor(), first_keys), o, lse),
                      Contains("'first_key'") && Contains("[1, 4]"));
  // Sinks: f32 [Hq], one logit per head; their gradient the same.
  const Tensor sink_short = Tensor::zeros({3}), sink_bf16 = Tensor::zeros({4}, DType::bf16);
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, ops::AttentionMask(Tensor(), Tensor(), sink_short), o, lse),
                      Contains("'sink'") && Contains("[4]"));
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, ops::AttentionMask(Tensor(), Tensor(), sink_bf16), o, lse),
                      Contains("'sink'") && Contains("f32"));
  // Placed queries: i32 [Tq], causal only, positions among the keys.
  const auto placed = [](Tensor position) { return ops::AttentionMask(Tensor(), Tensor(), Tensor(), std::move(position)); };
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, placed(Tensor::zeros({4}, DType::i32)), o, lse),
                      Contains("'query_position'") && Contains("not causal"));
  ops::AttentionShape causal5 = s;
  causal5.causal = true;
  REQUIRE_THROWS_WITH(ops::attention_forward(causal5, q, kv5, placed(Tensor::zeros({5}, DType::i32)), o, lse),
                      Contains("'query_position'") && Contains("[4]"));
  REQUIRE_THROWS_WITH(ops::attention_forward(causal5, q, kv5, placed(Tensor::zeros({4}, DType::u8)), o, lse),
                      Contains("'query_position'") && Contains("i32"));
  REQUIRE_THROWS_WITH(
      ops::attention_forward(causal5, q, kv5, placed(Tensor::from<std::int32_t>({4}, {0, 1, 2, 5})), o, lse),
      Contains("query_position[3] = 5") && Contains("[0, 5)"));
  Tensor dsink_short = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(ops::attention_sink_backward(s, o, o, lse, Tensor::zeros({4}), dsink_short),
                      Contains("attention_sink_backward") && Contains("'dsink'"));
  Tensor lse_probs = Tensor::zeros({1, 4, 4, 5});
  REQUIRE_THROWS_WITH(ops::attention_forward(s, q, kv5, Tensor(), o, lse_probs),
                      Contains("'lse'") && Contains("[B, Hq, Tq]"));
  Tensor dq = Tensor::zeros({1, 4, 32}), dkv = Tensor::zeros({1, 4, 32});
  REQUIRE_THROWS_WITH(ops::attention_backward(s, o, q, kv5, Tensor(), o, lse, dq, dkv),
                      Contains("attention_backward") && Contains("'dkv'"));

  Tensor ln_w = Tensor::zeros({7}), mean = Tensor::zeros({4}), rstd = Tensor::zeros({4}), yy = Tensor::zeros({4, 8});
  REQUIRE_THROWS_WITH(ops::layer_norm_forward(x, ln_w, ln_w, 1e-5f, yy, mean, rstd),
                      Contains("layer_norm_forward") && Contains("'w'"));
  REQUIRE_THROWS_AS(ops::dropout_forward(x, 1.5f, 0, yy), Error);
  REQUIRE_THROWS_AS(ops::gelu_forward(x, bad_y), ShapeError);
  REQUIRE_THROWS_WITH(ops::tanh_forward(x, bad_y), Contains("tanh_forward") && Contains("'y'"));
  REQUIRE_THROWS_WITH(ops::tanh_backward(bad_y, x, yy), Contains("tanh_backward") && Contains("'dy'") &&
                                                         Contains("[4, 15]"));
  REQUIRE_THROWS_WITH(ops::tanh_forward(Tensor::zeros({4, 8}, DType::i32), yy),
                      Contains("tanh_forward") && Contains("float dtype"));
  // Mixture-of-experts dispatch (x [4,8]): one f32 weight per row, row_dot's out f32 [rows].
  Tensor three = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(ops::scale_rows(x, three, yy), Contains("scale_rows") && Contains("'w'") && Contains("one weight per row"));
  REQUIRE_THROWS_WITH(ops::scale_rows(x, Tensor::zeros({4}, DType::bf16), yy), Contains("scale_rows") && Contains("'w'"));
  REQUIRE_THROWS_WITH(ops::row_dot(x, bad_y, mean), Contains("row_dot") && Contains("[4, 15]"));
  REQUIRE_THROWS_WITH(ops::row_dot(x, yy, three), Contains("row_dot") && Contains("'out'"));
  // Llama-style ops (x [4,8]).
  REQUIRE_THROWS_WITH(ops::rms_norm_forward(x, ln_w, 1e-5f, yy, rstd), Contains("rms_norm_forward") && Contains("'w'"));
  Tensor rms_w = Tensor::zeros({8}), rstd3 = Tensor::zeros({3});
  REQUIRE_THROWS_WITH(ops::rms_norm_forward(x, rms_w, 1e-5f, yy, rstd3), Contains("rms_norm_forward") && Contains("'rstd'"));
  Tensor y_half = Tensor::zeros({4, 4}), y_odd = Tensor::zeros({4, 3});
  ops::swiglu_forward(x, y_half);  // [4, 8] → [4, 4]
  REQUIRE_THROWS_WITH(ops::swiglu_forward(x, y_odd), Contains("swiglu_forward") && Contains("[N, 2F]"));
  REQUIRE_THROWS_WITH(ops::swiglu_backward(y_half, x, y_half), Contains("swiglu_backward") && Contains("'dx'"));
  GatedLinearUnit no_clamp;
  no_clamp.clamp = 0.0f;
  REQUIRE_THROWS_WITH(ops::swiglu_forward(x, y_half, no_clamp), Contains("swiglu_forward") && Contains("clamp > 0"));
  GatedLinearUnit negative_alpha;
  negative_alpha.alpha = -1.0f;
  REQUIRE_THROWS_WITH(ops::swiglu_backward(y_half, x, x, negative_alpha),
                      Contains("swiglu_backward") && Contains("alpha > 0"));
  ops::RopeShape rs{1, 4, 2, 4, 8, 4};
  ops::rope_forward(rs, x);
  rs.rotary_dim = 3;
  REQUIRE_THROWS_WITH(ops::rope_forward(rs, x), Contains("rope_forward") && Contains("even"));
  rs.rotary_dim = 4;
  rs.row_width = 6;
  REQUIRE_THROWS_WITH(ops::rope_backward(rs, x), Contains("rope_backward") && Contains("row width"));
  REQUIRE_THROWS_AS(ops::add(x, w, y), ShapeError);
  REQUIRE_THROWS_AS(ops::linear_forward(Tensor(), w, nullptr, y), ShapeError);
  Tensor m = Tensor::zeros({4, 8}), v = Tensor::zeros({4, 8});
  ops::AdamParams ap;
  ap.step = 0;
  REQUIRE_THROWS_WITH(ops::adam_step(x, x, m, v, ap), Contains("1-based"));
}

// A zero-sized last dim used to divide by zero (SIGFPE) before any shape check ran.
TEST_CASE("ops reject a zero-sized last dim instead of dividing by it", "[unit]") {
  Tensor x0 = Tensor::zeros({4, 0}), w0 = Tensor::zeros({3, 0}), y = Tensor::zeros({4, 3});
  REQUIRE_THROWS_WITH(ops::linear_forward(x0, w0, nullptr, y), Contains("linear_forward") && Contains("[4, 0]"));
  REQUIRE_THROWS_AS(ops::linear_backward(y, x0, w0, nullptr, nullptr, nullptr), ShapeError);
  Tensor b = Tensor::zeros({0, 3}), out = Tensor::zeros({4, 3});
  REQUIRE_THROWS_WITH(ops::matmul(x0, false, b, false, out), Contains("matmul") && Contains("'a'"));
  Tensor none = Tensor::zeros({0}), mean = Tensor::zeros({4}), rstd = Tensor::zeros({4}), x0c = Tensor::zeros({4, 0});
  REQUIRE_THROWS_WITH(ops::layer_norm_forward(x0, none, none, 1e-5f, x0c, mean, rstd),
                      Contains("layer_norm_forward") && Contains("[4, 0]"));
  Tensor dw = Tensor::zeros({0}), db = Tensor::zeros({0});
  REQUIRE_THROWS_AS(ops::layer_norm_backward(x0, x0, none, mean, rstd, x0c, dw, db), ShapeError);
  REQUIRE_THROWS_AS(ops::add_bias(x0c, none), ShapeError);
}
