#include "tessera/data/torch_randperm.hpp"

#include <random>
#include <utility>

namespace tessera {

std::vector<std::int64_t> torch_randperm(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> r(static_cast<std::size_t>(n > 0 ? n : 0));
  std::mt19937 engine(static_cast<std::mt19937::result_type>(seed));
  if (n < std::int64_t{4294967295} / 20) {  // PyTorch's "small n" path, unchanged since its first versions
    for (std::int64_t i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = 0; i + 1 < n; ++i) {
      const auto z = static_cast<std::int64_t>(engine() % static_cast<std::uint64_t>(n - i));
      std::swap(r[static_cast<std::size_t>(i)], r[static_cast<std::size_t>(z + i)]);
    }
    return r;
  }
  for (std::int64_t i = 0; i < n; ++i) {  // the inside-out shuffle on 64-bit draws (PyTorch ≥ 2.6)
    const std::uint64_t high = engine(), low = engine();
    const auto z = static_cast<std::size_t>(((high << 32) | low) % static_cast<std::uint64_t>(i + 1));
    r[static_cast<std::size_t>(i)] = r[z];
    r[z] = i;
  }
  return r;
}

}  // namespace tessera
