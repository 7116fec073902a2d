// Finite-difference gradient checks, independent of PyTorch: the backward of layer_norm,
// attention, gelu, tanh and cross-entropy against central differences of the forward.
//
// The objective is L = Σ r·y in double for a fixed random r, so dL/dy = r is what backward gets.
// Forward runs in float: with step h the rounding noise in L is ~1e-7·‖y‖·‖r‖/h, and the
// truncation error ~h², so h = 1e-2·scale gives ~1e-3 relative agreement; the tolerance below is
// a few times the error measured, and a wrong formula (sign, missing term) is off by O(1).
#include <catch2/catch.hpp>

#include <cstdio>
#include <functional>
#include <vector>
#include <random>

#include "tessera/ops.hpp"

using namespace tessera;

namespace {

Tensor random(const Shape& shape, std::mt19937& rng, float scale = 1.0f, float offset = 0.0f) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = offset + scale * nd(rng);
  return t;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data<float>()[i]) * b.data<float>()[i];
  return s;
}

// ‖numeric − analytic‖/‖analytic‖ over every element of `x`, with L = f() re-evaluated per element.
double fd_rel_err(Tensor& x, const Tensor& analytic, const std::function<double()>& f, float h) {
  double num = 0.0, den = 0.0;
  float* p = x.data<float>();
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const float x0 = p[i];
    p[i] = x0 + h;
    const double lp = f();
    p[i] = x0 - h;
    const double lm = f();
    p[i] = x0;
    const double numeric = (lp - lm) / (2.0 * h);
    const double diff = numeric - analytic.data<float>()[i];
    num += diff * diff;
    den += static_cast<double>(analytic.data<float>()[i]) * analytic.data<float>()[i];
  }
  return std::sqrt(num / den);
}

constexpr double kFdTol = 3e-3;

}  // namespace

TEST_CASE("layer_norm backward matches finite differences", "[unit]") {
  std::mt19937 rng(7);
  for (auto [N, C] : {std::pair<std::int64_t, std::int64_t>{1, 5}, {3, 7}, {4, 24}}) {
    Tensor x = random({N, C}, rng, 1.0f, 0.5f), w = random({C}, rng, 0.3f, 1.0f), b = random({C}, rng);
    Tensor r = random({N, C}, rng);
    Tensor y = Tensor::empty({N, C}), mean = Tensor::empty({N}), rstd = Tensor::empty({N});
    auto L = [&] {
      ops::layer_norm_forward(x, w, b, 1e-5f, y, mean, rstd);
      return dot(y, r);
    };
    L();
    Tensor dx = Tensor::empty({N, C}), dw = Tensor::zeros({C}), db = Tensor::zeros({C});
    ops::layer_norm_backward(r, x, w, mean, rstd, dx, dw, db);
    const double ex = fd_rel_err(x, dx, L, 1e-2f), ew = fd_rel_err(w, dw, L, 1e-2f),
                 eb = fd_rel_err(b, db, L, 1e-2f);
    std::printf("finite differences layer_norm N%ld C%ld: dx %.2e dw %.2e db %.2e\n", long(N), long(C), ex, ew, eb);
    CHECK(ex < kFdTol);
    CHECK(ew < kFdTol);
    CHECK(eb < kFdTol);
  }
}

TEST_CASE("attention backward matches finite differences (MHA, GQA, MQA; causal, masked, cross)", "[unit]") {
  std::mt19937 rng(11);
  struct Case {
    ops::AttentionShape s;
    std::vector<std::uint8_t> mask;  // [B,Tk]; empty: none
  };
  const std::vector<Case> cases = {
      {{1, 5, 5, 2, 2, 3, true}, {}},
      {{2, 4, 4, 4, 2, 3, true}, {}},
      {{1, 6, 6, 3, 1, 4, true}, {}},
      {{1, 4, 4, 2, 1, 3, false}, {}},
      {{2, 5, 5, 2, 1, 3, true}, {0, 1, 1, 0, 1, /**/ 1, 1, 0, 1, 1}},  // row 0 of batch 0 attends nothing
      {{2, 3, 6, 2, 2, 4, false}, {1, 0, 1, 1, 0, 1, /**/ 0, 0, 0, 0, 0, 0}},  // cross; batch 1 all masked
      {{1, 2, 7, 4, 2, 3, false}, {}},
  };
  for (const auto& [s, mask_values] : cases) {
    Tensor mask;
    if (!mask_values.empty()) mask = Tensor::from<std::uint8_t>({s.B, s.Tk}, mask_values);
    Tensor q = random({s.B, s.Tq, s.Hq * s.D}, rng), kv = random({s.B, s.Tk, 2 * s.Hkv * s.D}, rng);
    Tensor r = random({s.B, s.Tq, s.Hq * s.D}, rng);
    Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({s.B, s.Hq, s.Tq});
    auto L = [&] {
      ops::attention_forward(s, q, kv, mask, out, lse);
      return dot(out, r);
    };
    L();
    Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
    ops::attention_backward(s, r, q, kv, mask, out, lse, dq, dkv);
    const double eq = fd_rel_err(q, dq, L, 1e-2f), ekv = fd_rel_err(kv, dkv, L, 1e-2f);
    std::printf("finite differences attention B%ld Tq%ld Tk%ld Hq%ld Hkv%ld D%ld causal%d mask%d: dq %.2e dkv %.2e\n",
                long(s.B), long(s.Tq), long(s.Tk), long(s.Hq), long(s.Hkv), long(s.D), int(s.causal),
                int(mask.defined()), eq, ekv);
    CHECK(eq < kFdTol);
    CHECK(ekv < kFdTol);
  }
}

TEST_CASE("attention sinks' gradient matches finite differences, with probability dropout and a window", "[unit]") {
  // The dropout masks are the same hash in every forward, so L is a smooth function of q, kv and
  // the sinks; the sinks' gradient −Σ exp(σ − lse)·rowsum(dout∘out) holds with the dropped
  // probabilities too (ops.hpp).
  std::mt19937 rng(17);
  for (const auto& [dropout, window] : {std::pair{0.0f, std::int64_t{-1}}, {0.3f, std::int64_t{2}}}) {
    ops::AttentionShape s{2, 6, 6, 4, 2, 3, true};
    s.dropout = dropout;
    s.dropout_seed = 5;
    s.window_left = window;
    Tensor q = random({s.B, s.Tq, s.Hq * s.D}, rng), kv = random({s.B, s.Tk, 2 * s.Hkv * s.D}, rng);
    Tensor sink = random({s.Hq}, rng, 1.0f, 0.5f), r = random({s.B, s.Tq, s.Hq * s.D}, rng);
    Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({s.B, s.Hq, s.Tq});
    auto L = [&] {
      ops::attention_forward(s, q, kv, ops::AttentionMask(Tensor(), Tensor(), sink), out, lse);
      return dot(out, r);
    };
    L();
    Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape()), dsink = Tensor::zeros({s.Hq});
    const ops::AttentionMask mask(Tensor(), Tensor(), sink);
    ops::attention_backward(s, r, q, kv, mask, out, lse, dq, dkv);
    ops::attention_sink_backward(s, r, out, lse, sink, dsink);
    const double eq = fd_rel_err(q, dq, L, 1e-2f), ekv = fd_rel_err(kv, dkv, L, 1e-2f),
                 es = fd_rel_err(sink, dsink, L, 1e-2f);
    std::printf("finite differences attention sinks dropout %.1f window %ld: dq %.2e dkv %.2e dsink %.2e\n", dropout,
                long(window), eq, ekv, es);
    CHECK(eq < kFdTol);
    CHECK(ekv < kFdTol);
    CHECK(es < kFdTol);
  }
}

TEST_CASE("gelu and cross-entropy backward match finite differences", "[unit]") {
  std::mt19937 rng(13);
  Tensor x = random({37}, rng, 2.0f), r = random({37}, rng), y = Tensor::empty({37});
  auto Lg = [&] {
    ops::gelu_forward(x, y);
    return dot(y, r);
  };
  Tensor dx = Tensor::empty({37});
  ops::gelu_backward(r, x, dx);
  const double eg = fd_rel_err(x, dx, Lg, 1e-2f);
  CHECK(eg < kFdTol);
  auto Le = [&] {
    ops::gelu_forward(x, y, ops::GeluForm::erf);
    return dot(y, r);
  };
  ops::gelu_backward(r, x, dx, ops::GeluForm::erf);
  CHECK(fd_rel_err(x, dx, Le, 1e-2f) < kFdTol);

  const std::int64_t N = 3, V = 11;
  Tensor logits = random({N, V}, rng, 2.0f);
  Tensor targets = Tensor::from<std::int32_t>({N}, {0, 10, 4});
  Tensor mask = Tensor::from<float>({N}, {1.0f, 0.0f, 1.0f});
  Tensor losses = Tensor::empty({N});
  const float gs = 0.5f;
  auto Lc = [&] {
    Tensor l = logits.clone();
    ops::softmax_cross_entropy(l, targets, mask, losses, false, 1.0f);
    return gs * dot(losses, mask);
  };
  Tensor grad = logits.clone();
  ops::softmax_cross_entropy(grad, targets, mask, losses, true, gs);
  const double ec = fd_rel_err(logits, grad, Lc, 1e-2f);
  std::printf("finite differences gelu: dx %.2e; cross_entropy: dlogits %.2e\n", eg, ec);
  CHECK(ec < kFdTol);
}

TEST_CASE("tanh backward (from its output) matches finite differences", "[unit]") {
  std::mt19937 rng(17);
  Tensor x = random({37}, rng, 1.5f), r = random({37}, rng), y = Tensor::empty({37});
  auto L = [&] {
    ops::tanh_forward(x, y);
    return dot(y, r);
  };
  L();  // y = tanh(x), what backward receives
  Tensor dx = Tensor::empty({37});
  ops::tanh_backward(r, y, dx);
  const double e = fd_rel_err(x, dx, L, 1e-2f);
  std::printf("finite differences tanh: dx %.2e\n", e);
  CHECK(e < kFdTol);
}
