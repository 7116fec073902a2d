// numpy's legacy np.random.RandomState(seed), only the parts index building needs: shuffle and
// bounded integers. Megatron-LM shuffles its document and sample orders with it, so reproducing it
// bit for bit makes our GPT indices equal Megatron's for the same seed (a run can switch between the
// two on the same data and see the same samples).
//
// RandomState(seed) with an integer seed is MT19937 seeded by init_genrand (identical to
// std::mt19937(seed)); shuffle(x) is Fisher-Yates from the end, each j = random_interval(i), which
// draws 32-bit outputs (64-bit = two outputs, high first, when i > 2^32-1) masked to the smallest
// all-ones mask >= i and rejects values > i.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>

namespace tessera::gpt_indexed {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(std::uint32_t seed) : mt_(seed) {}

  // numpy's random_interval(max): uniform in [0, max].
  std::uint64_t interval(std::uint64_t max) {
    if (max == 0) return 0;
    std::uint64_t mask = max;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
    mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
    std::uint64_t value;
    if (max <= 0xffffffffULL) {
      while ((value = (static_cast<std::uint64_t>(mt_()) & mask)) > max) {}
    } else {
      while ((value = (next64() & mask)) > max) {}
    }
    return value;
  }

  // np.random.RandomState.shuffle on a 1-D array.
  template <typename T>
  void shuffle(std::span<T> x) {
    for (std::size_t i = x.size(); i-- > 1;) {
      const std::size_t j = static_cast<std::size_t>(interval(i));
      std::swap(x[i], x[j]);
    }
  }

  std::uint32_t next32() { return static_cast<std::uint32_t>(mt_()); }
  std::uint64_t next64() {
    const std::uint64_t hi = mt_();
    return (hi << 32) | static_cast<std::uint64_t>(mt_());
  }

 private:
  std::mt19937 mt_;
};

}  // namespace tessera::gpt_indexed
