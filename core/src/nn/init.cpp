#include "tessera/nn/init.hpp"

#include <cmath>

namespace tessera {

namespace {
// splitmix64: a well-mixed 64-bit hash; consecutive counters give independent-looking outputs.
inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
inline double unit_open(std::uint64_t h) { return (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53; }
}  // namespace

std::uint64_t hash_name(std::uint64_t seed, const std::string& name) {
  std::uint64_t h = 1469598103934665603ULL ^ mix(seed);  // FNV-1a over the name, seeded
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return mix(h);
}

namespace {
// Box–Muller on the pair of uniforms of counter pair j gives the normals of elements 2j and 2j+1.
inline void normal_pair(std::uint64_t key, std::uint64_t j, double& even, double& odd) {
  const double r = std::sqrt(-2.0 * std::log(unit_open(mix(key ^ mix(2 * j)))));
  const double a = 6.283185307179586 * unit_open(mix(key ^ mix(2 * j + 1)));
  even = r * std::cos(a);
  odd = r * std::sin(a);
}
}  // namespace

double counter_normal(std::uint64_t key, std::uint64_t i) {
  double even, odd;
  normal_pair(key, i / 2, even, odd);
  return (i % 2 == 0) ? even : odd;
}

void init_normal(Tensor& t, float std, std::uint64_t seed, const std::string& name, std::int64_t offset) {
  const std::uint64_t key = hash_name(seed, name);
  float* p = t.data<float>();
  const std::int64_t n = t.numel();
  // Whole pairs of the full tensor's counters, so each log/sqrt/sincos serves two elements and a
  // shard starting at an odd offset still gets exactly the full tensor's values.
  const std::int64_t first_pair = offset / 2, last_pair = (offset + n + 1) / 2;
#pragma omp parallel for schedule(static)
  for (std::int64_t j = first_pair; j < last_pair; ++j) {
    double even, odd;
    normal_pair(key, static_cast<std::uint64_t>(j), even, odd);
    const std::int64_t i0 = 2 * j - offset;
    if (i0 >= 0 && i0 < n) p[i0] = static_cast<float>(std * even);
    if (i0 + 1 >= 0 && i0 + 1 < n) p[i0 + 1] = static_cast<float>(std * odd);
  }
}

}  // namespace tessera
