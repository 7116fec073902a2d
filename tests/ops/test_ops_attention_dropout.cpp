// Dropout on the attention probabilities (ops::AttentionShape::dropout, Megatron-LM's
// attention_dropout): the flash kernel against the parity harness's plain double-precision
// attention (backend_ops_reference.hpp) dropping the same probabilities (dropout_mask.hpp's hash of each pair's counter) — forward and backward —, its
// backward against finite differences of its own forward (the mask is fixed by the seed), and the
// mask's independence of the tensor-parallel split of the heads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "tessera/dropout_mask.hpp"
#include "backend_ops_reference.hpp"
#include "tessera/ops.hpp"

using namespace tessera;

namespace {

namespace ref = tessera::test::ref;
using Vec = ref::Vec;

Tensor random(const Shape& shape, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor t = Tensor::empty(shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
  return t;
}

Vec as_vec(const Tensor& t) { return Vec(t.data<float>(), t.data<float>() + t.numel()); }

double rel_l2(const Tensor& ours, const Vec& ref) {
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < ours.numel(); ++i) {
    const double d = ours.data<float>()[i] - ref[static_cast<std::size_t>(i)];
    num += d * d;
    den += ref[static_cast<std::size_t>(i)] * ref[static_cast<std::size_t>(i)];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The parity harness's plain double attention (backend_ops_reference.hpp) with the factors drawn
// as dropout_mask.hpp defines them for each (b, h, t, j).
ref::Attn reference(const ops::AttentionShape& s, const std::vector<std::uint8_t>& mask) {
  ref::Attn a{s.B, s.Tq, s.Tk, s.Hq, s.Hkv, s.D, s.causal, mask};
  a.dropout = [s](std::int64_t b, std::int64_t h, std::int64_t t, std::int64_t j) {
    const std::int64_t heads = s.heads_total > 0 ? s.heads_total : s.Hq;
    const std::int64_t counter = ((b * heads + s.head_offset + h) * s.Tq + t) * s.Tk + j;
    const bool kept = dropout::hash24(counter, dropout::key_of(s.dropout_seed)) >= dropout::threshold_of(s.dropout);
    return kept ? 1.0 / (1.0 - static_cast<double>(s.dropout)) : 0.0;
  };
  return a;
}

struct Case {
  ops::AttentionShape s;
  std::vector<std::uint8_t> mask;
  const char* what;
};

ops::AttentionShape dropped(ops::AttentionShape s, float p, std::uint64_t seed) {
  s.dropout = p;
  s.dropout_seed = seed;
  return s;
}

}  // namespace

TEST_CASE("attention with dropout on the probabilities matches a plain reference that drops the same ones",
          "[unit]") {
  std::mt19937 rng(29);
  std::vector<std::uint8_t> masked(2 * 70, 1);
  for (int j = 50; j < 70; ++j) masked[static_cast<std::size_t>(j)] = 0;  // row 0: padding past 50
  masked[70 + 3] = 0;
  const std::vector<Case> cases = {
      {dropped({1, 9, 9, 2, 2, 4, true}, 0.1f, 1), {}, "causal MHA"},
      {dropped({2, 70, 70, 4, 2, 8, true}, 0.3f, 2), {}, "causal GQA past one 64-key tile"},
      {dropped({2, 70, 70, 3, 1, 5, false}, 0.5f, 3), masked, "padding-masked MQA"},
      {dropped({2, 6, 67, 2, 2, 4, false}, 0.2f, 4), {}, "cross attention, Tk past one tile"},
  };
  for (const Case& c : cases) {
    const ops::AttentionShape& s = c.s;
    INFO(c.what);
    Tensor q = random({s.B, s.Tq, s.Hq * s.D}, rng), kv = random({s.B, s.Tk, 2 * s.Hkv * s.D}, rng);
    Tensor dout = random(q.shape(), rng);
    Tensor mask = c.mask.empty() ? Tensor() : Tensor::from<std::uint8_t>({s.B, s.Tk}, c.mask);
    Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({s.B, s.Hq, s.Tq});
    ops::attention_forward(s, q, kv, mask, out, lse);
    Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
    ops::attention_backward(s, dout, q, kv, mask, out, lse, dq, dkv);
    const ref::Attn a = reference(s, c.mask);
    Vec r_out, r_lse, r_dq, r_dkv;
    ref::attention_forward(a, as_vec(q), as_vec(kv), r_out, r_lse);
    ref::attention_backward(a, as_vec(dout), as_vec(q), as_vec(kv), r_dq, r_dkv);
    const double e_out = rel_l2(out, r_out), e_dq = rel_l2(dq, r_dq), e_dkv = rel_l2(dkv, r_dkv);
    std::printf("attention dropout %s (p %.1f): out %.1e dq %.1e dkv %.1e\n", c.what, double(s.dropout), e_out, e_dq,
                e_dkv);
    CHECK(e_out < 1e-5);
    CHECK(e_dq < 1e-5);
    CHECK(e_dkv < 1e-5);
    // Something was dropped: the output differs from attention without dropout.
    Tensor plain = Tensor::empty(q.shape());
    ops::AttentionShape none = s;
    none.dropout = 0.0f;
    ops::attention_forward(none, q, kv, mask, plain, lse);
    CHECK(rel_l2(plain, r_out) > 1e-2);
  }
}

TEST_CASE("attention dropout's backward matches finite differences of its forward", "[unit]") {
  std::mt19937 rng(31);
  for (const ops::AttentionShape& s : {dropped({1, 5, 5, 2, 1, 3, true}, 0.3f, 7), dropped({2, 3, 6, 2, 2, 4, false}, 0.5f, 8)}) {
    Tensor q = random({s.B, s.Tq, s.Hq * s.D}, rng), kv = random({s.B, s.Tk, 2 * s.Hkv * s.D}, rng);
    Tensor r = random(q.shape(), rng);
    Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({s.B, s.Hq, s.Tq});
    const auto L = [&] {
      ops::attention_forward(s, q, kv, Tensor(), out, lse);
      double sum = 0;
      for (std::int64_t i = 0; i < out.numel(); ++i) sum += double(out.data<float>()[i]) * r.data<float>()[i];
      return sum;
    };
    L();
    Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
    ops::attention_backward(s, r, q, kv, Tensor(), out, lse, dq, dkv);
    for (auto [x, analytic] : {std::pair<Tensor*, Tensor*>{&q, &dq}, {&kv, &dkv}}) {
      double num = 0, den = 0;
      for (std::int64_t i = 0; i < x->numel(); ++i) {
        float& xi = x->data<float>()[i];
        const float x0 = xi;
        xi = x0 + 1e-2f;
        const double lp = L();
        xi = x0 - 1e-2f;
        const double lm = L();
        xi = x0;
        const double d = (lp - lm) / 2e-2 - analytic->data<float>()[i];
        num += d * d;
        den += double(analytic->data<float>()[i]) * analytic->data<float>()[i];
      }
      CHECK(std::sqrt(num / den) < 3e-3);
    }
  }
}

TEST_CASE("attention dropout draws each head's mask from the layer's head number, whatever the tp split", "[unit]") {
  // Four heads in one op equal two ops of two heads each (a tp2 split: q's columns and the K/V
  // groups halved, head_offset 0 and 2 of heads_total 4), bit for bit; p = 0 is attention without dropout.
  std::mt19937 rng(37);
  const ops::AttentionShape whole = dropped({2, 20, 20, 4, 2, 4, true}, 0.25f, 99);
  const std::int64_t D = whole.D, T = whole.Tq, B = whole.B;
  Tensor q = random({B, T, 4 * D}, rng), kv = random({B, T, 2 * 2 * D}, rng), dout = random(q.shape(), rng);
  Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({B, 4, T});
  Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
  ops::attention_forward(whole, q, kv, Tensor(), out, lse);
  ops::attention_backward(whole, dout, q, kv, Tensor(), out, lse, dq, dkv);
  for (std::int64_t rank = 0; rank < 2; ++rank) {
    ops::AttentionShape half = whole;
    half.Hq = 2;
    half.Hkv = 1;
    half.head_offset = 2 * rank;
    half.heads_total = 4;
    // This rank's columns: q and dout heads [2·rank, 2·rank + 2); kv's group `rank` (K, then V).
    Tensor qh = Tensor::empty({B, T, 2 * D}), kvh = Tensor::empty({B, T, 2 * D}), douth = Tensor::empty(qh.shape());
    for (std::int64_t row = 0; row < B * T; ++row) {
      std::memcpy(qh.data<float>() + row * 2 * D, q.data<float>() + row * 4 * D + rank * 2 * D, 2 * D * sizeof(float));
      std::memcpy(douth.data<float>() + row * 2 * D, dout.data<float>() + row * 4 * D + rank * 2 * D,
                  2 * D * sizeof(float));
      std::memcpy(kvh.data<float>() + row * 2 * D, kv.data<float>() + row * 4 * D + rank * D, D * sizeof(float));
      std::memcpy(kvh.data<float>() + row * 2 * D + D, kv.data<float>() + row * 4 * D + 2 * D + rank * D,
                  D * sizeof(float));
    }
    Tensor outh = Tensor::empty(qh.shape()), lseh = Tensor::empty({B, 2, T});
    Tensor dqh = Tensor::empty(qh.shape()), dkvh = Tensor::empty(kvh.shape());
    ops::attention_forward(half, qh, kvh, Tensor(), outh, lseh);
    ops::attention_backward(half, douth, qh, kvh, Tensor(), outh, lseh, dqh, dkvh);
    for (std::int64_t row = 0; row < B * T; ++row) {
      CHECK(std::memcmp(outh.data<float>() + row * 2 * D, out.data<float>() + row * 4 * D + rank * 2 * D,
                        2 * D * sizeof(float)) == 0);
      CHECK(std::memcmp(dqh.data<float>() + row * 2 * D, dq.data<float>() + row * 4 * D + rank * 2 * D,
                        2 * D * sizeof(float)) == 0);
      CHECK(std::memcmp(dkvh.data<float>() + row * 2 * D, dkv.data<float>() + row * 4 * D + rank * D,
                        D * sizeof(float)) == 0);
    }
  }
  ops::AttentionShape zero = whole;
  zero.dropout = 0.0f;
  Tensor a = Tensor::empty(q.shape()), b = Tensor::empty(q.shape());
  ops::attention_forward(zero, q, kv, Tensor(), a, lse);
  ops::attention_forward(ops::AttentionShape{B, T, T, 4, 2, D, true}, q, kv, Tensor(), b, lse);
  CHECK(std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0);
}

// Context parallelism's queries (AttentionMask::query_position: a rank's chunks of the sequence
// against all keys) draw the masks of the whole attention: their rows of out, lse and dq are the
// whole attention's, and their dkv is its dkv when only those rows carry a gradient.
TEST_CASE("attention dropout with queries placed among the keys draws the whole attention's masks", "[unit]") {
  std::mt19937 rng(41);
  const std::int64_t B = 2, T = 136, D = 8, Hq = 4, Hkv = 2, Tq = T / 2;
  const ops::AttentionShape whole = dropped({B, T, T, Hq, Hkv, D, true}, 0.25f, 17);
  // cp 2, rank 1: chunks 1 and 2 of 4.
  std::vector<std::int32_t> positions;
  for (std::int64_t t = T / 4; t < 3 * T / 4; ++t) positions.push_back(static_cast<std::int32_t>(t));
  Tensor q = random({B, T, Hq * D}, rng), kv = random({B, T, 2 * Hkv * D}, rng);
  Tensor dout = Tensor::zeros({B, T, Hq * D}), dout_placed = random({B, Tq, Hq * D}, rng);
  Tensor q_placed = Tensor::empty({B, Tq, Hq * D});
  const std::int64_t row = Hq * D;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < Tq; ++i) {
      const std::int64_t t = b * T + positions[static_cast<std::size_t>(i)];
      std::memcpy(q_placed.data<float>() + (b * Tq + i) * row, q.data<float>() + t * row, row * sizeof(float));
      std::memcpy(dout.data<float>() + t * row, dout_placed.data<float>() + (b * Tq + i) * row, row * sizeof(float));
    }
  Tensor out = Tensor::empty(q.shape()), lse = Tensor::empty({B, Hq, T});
  Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
  ops::attention_forward(whole, q, kv, Tensor(), out, lse);
  ops::attention_backward(whole, dout, q, kv, Tensor(), out, lse, dq, dkv);

  ops::AttentionShape placed = whole;
  placed.Tq = Tq;
  const ops::AttentionMask mask(Tensor(), Tensor(), Tensor(), Tensor::from<std::int32_t>({Tq}, positions));
  Tensor out_p = Tensor::empty(q_placed.shape()), lse_p = Tensor::empty({B, Hq, Tq});
  Tensor dq_p = Tensor::empty(q_placed.shape()), dkv_p = Tensor::empty(kv.shape());
  ops::attention_forward(placed, q_placed, kv, mask, out_p, lse_p);
  ops::attention_backward(placed, dout_placed, q_placed, kv, mask, out_p, lse_p, dq_p, dkv_p);
  double worst = 0;
  const auto near = [&worst](const float* a, const float* b, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(b[i])));
  };
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < Tq; ++i) {
      const std::int64_t t = positions[static_cast<std::size_t>(i)];
      near(out_p.data<float>() + (b * Tq + i) * row, out.data<float>() + (b * T + t) * row, row);
      near(dq_p.data<float>() + (b * Tq + i) * row, dq.data<float>() + (b * T + t) * row, row);
      for (std::int64_t h = 0; h < Hq; ++h)
        near(lse_p.data<float>() + (b * Hq + h) * Tq + i, lse.data<float>() + (b * Hq + h) * T + t, 1);
    }
  near(dkv_p.data<float>(), dkv.data<float>(), dkv.numel());
  std::printf("attention dropout, placed queries against the whole attention: worst difference %.1e\n", worst);
  CHECK(worst < 1e-5);
  // The keys past the last placed query get no gradient.
  CHECK(dkv_p.data<float>()[(B * T - 1) * 2 * Hkv * D] == 0.0f);
}
