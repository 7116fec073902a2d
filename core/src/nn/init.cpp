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

double counter_normal(std::uint64_t key, std::uint64_t i) {
  double u1 = unit_open(mix(key ^ mix(2 * i)));
  double u2 = unit_open(mix(key ^ mix(2 * i + 1)));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

void init_normal(Tensor& t, float std, std::uint64_t seed, const std::string& name, std::int64_t offset) {
  const std::uint64_t key = hash_name(seed, name);
  float* p = t.data<float>();
  const std::int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i)
    p[i] = static_cast<float>(std * counter_normal(key, static_cast<std::uint64_t>(offset + i)));
}

}  // namespace tessera
