// Dropout has no PyTorch twin (the mask comes from our hash), so it is checked by its properties.
#include <catch2/catch.hpp>

#include <cmath>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

using namespace tessera;

namespace {
Tensor iota(std::int64_t n) {  // non-zero, distinct values: a kept element is never 0
  Tensor t = Tensor::empty({n});
  for (std::int64_t i = 0; i < n; ++i) t.data<float>()[i] = 1.0f + 0.001f * static_cast<float>(i % 1000);
  return t;
}
}  // namespace

TEST_CASE("dropout: p = 0 copies", "[unit]") {
  Tensor x = iota(1000), y = Tensor::full({1000}, -1.0f);
  ops::dropout_forward(x, 0.0f, 42, y);
  for (std::int64_t i = 0; i < 1000; ++i) REQUIRE(y.data<float>()[i] == x.data<float>()[i]);
}

TEST_CASE("dropout: backward reproduces the forward mask; kept values are x/(1-p)", "[unit]") {
  for (float p : {0.1f, 0.5f, 0.9f}) {
    for (std::int64_t n : {1, 7, 33, 100003}) {
      Tensor x = iota(n), y = Tensor::empty({n});
      Tensor dy = Tensor::full({n}, 2.0f), dx = Tensor::empty({n});
      ops::dropout_forward(x, p, 1234, y);
      ops::dropout_backward(dy, p, 1234, dx);
      const float scale = 1.0f / (1.0f - p);
      std::int64_t bad = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const float yi = y.data<float>()[i], dxi = dx.data<float>()[i], xi = x.data<float>()[i];
        const bool kept = yi != 0.0f;
        if (kept != (dxi != 0.0f)) ++bad;                         // same mask
        if (kept && yi != xi * scale) ++bad;                      // exact scaling
        if (kept && dxi != 2.0f * scale) ++bad;
        if (kept && std::abs(yi - xi / (1.0f - p)) > 1e-6f * std::abs(yi)) ++bad;  // = x/(1−p) to 1 ulp
      }
      INFO("p=" << p << " n=" << n);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("dropout: kept fraction is 1-p, masks depend on the seed, not on the thread count", "[unit]") {
  const std::int64_t n = 1000000;
  Tensor x = Tensor::full({n}, 1.0f), y = Tensor::empty({n}), y2 = Tensor::empty({n});
  for (float p : {0.1f, 0.5f, 0.9f}) {
    ops::dropout_forward(x, p, 99, y);
    std::int64_t kept = 0;
    for (std::int64_t i = 0; i < n; ++i) kept += y.data<float>()[i] != 0.0f;
    const double frac = static_cast<double>(kept) / static_cast<double>(n);
    INFO("p=" << p << " kept " << frac);
    // σ = √(p(1−p)/n) ≤ 5e-4: ±5e-3 is 10σ (never fails by chance, catches a biased hash).
    CHECK(std::abs(frac - (1.0 - p)) < 5e-3);
  }
  // Another seed gives another mask (about half the elements differ at p = 0.5).
  ops::dropout_forward(x, 0.5f, 1, y);
  ops::dropout_forward(x, 0.5f, 2, y2);
  std::int64_t differ = 0;
  for (std::int64_t i = 0; i < n; ++i) differ += (y.data<float>()[i] != 0.0f) != (y2.data<float>()[i] != 0.0f);
  CHECK(std::abs(static_cast<double>(differ) / n - 0.5) < 5e-3);
  // The mask is a function of (seed, index) only.
  const int threads = ops::num_threads();
  ops::set_num_threads(1);
  ops::dropout_forward(x, 0.5f, 1, y2);
  ops::set_num_threads(threads);
  bool same = true;
  for (std::int64_t i = 0; i < n; ++i) same &= y.data<float>()[i] == y2.data<float>()[i];
  CHECK(same);
  // p = 1 drops everything.
  ops::dropout_forward(x, 1.0f, 1, y);
  CHECK(ops::sum_squares(y) == 0.0);
}

TEST_CASE("dropout: a slice with its offset draws the whole tensor's mask there", "[unit]") {
  // Sequence parallelism drops out each rank's rows of a [N, C] tensor separately; with the slice's
  // element offset each rank's mask must be that part of the one-process mask (forward and backward).
  // The offset 2³² − 5 crosses the counter's 32-bit halves.
  for (std::int64_t base : {std::int64_t{0}, (std::int64_t{1} << 32) - 5}) {
    const std::int64_t n = 100003, first = 40001, count = 30011;
    Tensor x = iota(n), y = Tensor::empty({n}), dx = Tensor::empty({n});
    ops::dropout_forward(x, 0.3f, 7, y, base);
    ops::dropout_backward(x, 0.3f, 7, dx, base);
    Tensor part = x.rows(first, first + count), y_part = Tensor::empty({count}), dx_part = Tensor::empty({count});
    ops::dropout_forward(part, 0.3f, 7, y_part, base + first);
    ops::dropout_backward(part, 0.3f, 7, dx_part, base + first);
    bool same = true;
    for (std::int64_t i = 0; i < count; ++i)
      same &= y_part.data<float>()[i] == y.data<float>()[first + i] && dx_part.data<float>()[i] == dx.data<float>()[first + i];
    INFO("base " << base);
    CHECK(same);
    // Without the offset the slice gets another mask.
    ops::dropout_forward(part, 0.3f, 7, y_part);
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < count; ++i) differ += (y_part.data<float>()[i] != 0.0f) != (y.data<float>()[first + i] != 0.0f);
    CHECK(differ > count / 10);
  }
  Tensor x = iota(4), y = Tensor::empty({4});
  REQUIRE_THROWS_AS(ops::dropout_forward(x, 0.5f, 1, y, -1), Error);
}
