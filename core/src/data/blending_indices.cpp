#include "tessera/data/blending_indices.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tessera/error.hpp"

// The errors w·x − count must round as Megatron's do (a product, then a difference): with
// -march=native the compiler would fuse them into one FMA, which breaks exact ties differently.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace tessera {

BlendingIndices build_blending_indices(std::span<const double> weights, std::int64_t size) {
  if (weights.empty()) throw Error("build_blending_indices: no datasets");
  if (size < 0) throw Error(fmt::format("build_blending_indices: negative size {}", size));
  const std::size_t k = weights.size();
  BlendingIndices r;
  r.dataset_index.resize(static_cast<std::size_t>(size));
  r.dataset_sample_index.resize(static_cast<std::size_t>(size));
  r.counts.assign(k, 0);
  for (std::int64_t i = 0; i < size; ++i) {
    const double x = std::max(static_cast<double>(i), 1.0);
    std::size_t best = 0;
    double best_error = weights[0] * x - static_cast<double>(r.counts[0]);
    for (std::size_t j = 1; j < k; ++j) {
      const double error = weights[j] * x - static_cast<double>(r.counts[j]);
      if (error > best_error) {
        best_error = error;
        best = j;
      }
    }
    r.dataset_index[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(best);
    r.dataset_sample_index[static_cast<std::size_t>(i)] = r.counts[best]++;
  }
  return r;
}

std::vector<std::int64_t> blend_samples_per_dataset(std::span<const double> weights, std::int64_t size) {
  std::vector<std::int64_t> n;
  n.reserve(weights.size());
  for (double w : weights) n.push_back(static_cast<std::int64_t>(std::ceil(static_cast<double>(size) * w * 1.005)));
  return n;
}

}  // namespace tessera
