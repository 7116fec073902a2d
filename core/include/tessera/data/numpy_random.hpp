// numpy's legacy np.random.RandomState(seed), the draws Megatron-LM's data code makes: GPT's
// document and sample shuffles, BERT's and T5's random(), randint(low, high), shuffle(list),
// choice(a, p=...) and geometric(p). Reproducing them bit for bit makes our indices and samples
// equal Megatron's for the same seed, so a Python transcription of its code checks ours exactly.
//
//   RandomState(seed)  MT19937 seeded by init_genrand, i.e. std::mt19937(seed).
//   random()           53-bit double from two 32-bit outputs: ((a >> 5)·2^26 + (b >> 6)) / 2^53.
//   randint(lo, hi)    lo + random_interval(hi − lo − 1): the outputs masked to the smallest all-ones
//                      mask ≥ max, values > max rejected (64-bit draws past 2^32 − 1).
//   shuffle(x)         Fisher-Yates from the end, j = random_interval(i).
//   choice(a, p)       cdf = cumsum(p) / its last value; one random(); the first index with cdf > u.
//   geometric(p)       p ≥ 1/3: CDF search; else ceil(log1p(−u) / log(1 − p)) (the legacy inversion).
//   binomial(n, p)     the legacy inversion on min(p, 1 − p) (one random() per try, bound
//                      min(n, np + 10·sqrt(np·q + 1))); even p = 0 or 1 draws once (the legacy code has
//                      no shortcut). numpy takes it while n·min(p, 1 − p) ≤ 30, which covers the FIM
//                      coin flips binomial(1, rate).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <span>
#include <utility>

namespace tessera {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(std::uint32_t seed) : mt_(seed) {}

  std::uint32_t next32() { return static_cast<std::uint32_t>(mt_()); }
  std::uint64_t next64() {
    const std::uint64_t hi = next32();
    return (hi << 32) | next32();
  }

  // random_interval(max): uniform in [0, max].
  std::uint64_t interval(std::uint64_t max) {
    if (max == 0) return 0;
    std::uint64_t mask = max;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
    mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
    std::uint64_t value;
    if (max <= 0xffffffffULL) {
      while ((value = (next32() & mask)) > max) {}
    } else {
      while ((value = (next64() & mask)) > max) {}
    }
    return value;
  }

  double random() {
    const std::uint32_t a = next32() >> 5, b = next32() >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }

  // randint(low, high): uniform in [low, high), high > low.
  std::int64_t randint(std::int64_t low, std::int64_t high) {
    return low + static_cast<std::int64_t>(interval(static_cast<std::uint64_t>(high - low - 1)));
  }

  template <typename T>
  void shuffle(std::span<T> x) {
    for (std::size_t i = x.size(); i-- > 1;) std::swap(x[i], x[static_cast<std::size_t>(interval(i))]);
  }

  // The index choice(a, p=p) picks; cdf holds cumsum(p) / cumsum(p)[-1], computed by the caller once.
  std::size_t choice(std::span<const double> cdf) {
    const double u = random();
    std::size_t i = 0;
    while (i + 1 < cdf.size() && !(cdf[i] > u)) ++i;  // searchsorted(cdf, u, side='right')
    return i;
  }

  std::int64_t geometric(double p) {
    if (p >= 0.333333333333333333333333) {
      const double u = random();
      std::int64_t x = 1;
      double sum = p, prod = p;
      while (u > sum) {
        prod *= 1.0 - p;
        sum += prod;
        ++x;
      }
      return x;
    }
    return static_cast<std::int64_t>(std::ceil(std::log1p(-random()) / std::log(1.0 - p)));
  }

  // binomial(n, p), n >= 0, p in [0, 1], n·min(p, 1 − p) <= 30 (numpy's BTPE branch past that is not
  // reproduced: std::invalid_argument).
  std::int64_t binomial(std::int64_t n, double p) {
    if (p <= 0.5) return binomial_inversion(n, p);
    return n - binomial_inversion(n, 1.0 - p);
  }

 private:
  std::int64_t binomial_inversion(std::int64_t n, double p) {
    if (p * static_cast<double>(n) > 30.0)
      throw std::invalid_argument("NumpyRandomState::binomial: n·p > 30 (numpy's BTPE branch) is not reproduced");
    const double q = 1.0 - p, qn = std::exp(static_cast<double>(n) * std::log(q)), np = static_cast<double>(n) * p;
    const auto bound = static_cast<std::int64_t>(std::min(static_cast<double>(n), np + 10.0 * std::sqrt(np * q + 1)));
    std::int64_t x = 0;
    double px = qn, u = random();
    while (u > px) {
      ++x;
      if (x > bound) {
        x = 0;
        px = qn;
        u = random();
      } else {
        u -= px;
        px = (static_cast<double>(n - x + 1) * p * px) / (static_cast<double>(x) * q);
      }
    }
    return x;
  }

  std::mt19937 mt_;
};

}  // namespace tessera
