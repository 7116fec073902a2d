#include "tessera/tools/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace tessera {

std::int32_t sample_token(const float* logits, std::int64_t vocab, const SamplingOptions& o, std::mt19937_64& rng) {
  if (o.temperature <= 0.0) return static_cast<std::int32_t>(std::max_element(logits, logits + vocab) - logits);
  std::vector<std::int32_t> ids(static_cast<std::size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::size_t keep = ids.size();
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < keep) keep = static_cast<std::size_t>(o.top_k);
  // Candidates sorted by logit, highest first (only the top `keep` need ordering).
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(),
                    [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b]; });
  const double top = logits[ids[0]];
  std::vector<double> p(keep);
  double total = 0;
  for (std::size_t i = 0; i < keep; ++i) total += p[i] = std::exp((logits[ids[i]] - top) / o.temperature);
  if (o.top_p < 1.0) {
    double cum = 0;
    std::size_t n = 0;
    while (n < keep && cum < o.top_p * total) cum += p[n++];
    keep = std::max<std::size_t>(n, 1);
    p.resize(keep);
  }
  std::discrete_distribution<std::size_t> pick(p.begin(), p.end());
  return ids[pick(rng)];
}

double next_top_p(double top_p, double decay, double bound) {
  const double p = top_p * decay;
  return bound > 0.0 ? std::max(p, bound) : p;
}

double token_logprob(const float* logits, std::int64_t vocab, std::int32_t id) {
  const double top = *std::max_element(logits, logits + vocab);
  double total = 0;
  for (std::int64_t i = 0; i < vocab; ++i) total += std::exp(static_cast<double>(logits[i]) - top);
  return static_cast<double>(logits[id]) - top - std::log(total);
}

}  // namespace tessera
