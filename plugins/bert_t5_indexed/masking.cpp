#include "masking.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tessera::bert_t5_indexed {

namespace {

// numpy's float64 sum of a short array: the first element plus the rest summed in order.
double numpy_sum(std::span<const double> v) {
  double rest = 0.0;
  for (std::size_t i = 1; i < v.size(); ++i) rest += v[i];
  return v.empty() ? 0.0 : v[0] + rest;
}

// The cdf np.random.choice builds from Megatron's n-gram weights pvals ∝ 1/n, normalised twice
// (once when built, once when passed as p=), in numpy's operation order.
std::vector<double> ngram_cdf(int max_ngrams) {
  std::vector<double> p(static_cast<std::size_t>(max_ngrams));
  for (int n = 1; n <= max_ngrams; ++n) p[n - 1] = 1.0 / n;
  for (int pass = 0; pass < 2; ++pass) {
    const double s = numpy_sum(p);
    for (double& x : p) x /= s;
  }
  std::vector<double> cdf(p.size());
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  const double last = cdf.back();
  for (double& x : cdf) x /= last;
  return cdf;
}

}  // namespace

Masking create_masked_lm_predictions(std::vector<std::int32_t>& tokens, std::span<const std::uint8_t> continuation,
                                     const MaskingOptions& o, double max_predictions, NumpyRandomState& rng) {
  // Whole-word candidates, flattened: candidate k is positions flat[begin[k], begin[k + 1]).
  std::vector<std::int32_t> flat, begin;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::int32_t t = tokens[i];
    if (t == o.cls || t == o.sep) continue;
    if (begin.empty() || !continuation[static_cast<std::size_t>(t)]) begin.push_back(static_cast<std::int32_t>(flat.size()));
    flat.push_back(static_cast<std::int32_t>(i));
  }
  const auto num_candidates = static_cast<std::int32_t>(begin.size());
  begin.push_back(static_cast<std::int32_t>(flat.size()));

  Masking out;
  if (o.masked_lm_prob == 0) return out;
  const double by_length = std::max(1.0, std::nearbyint(static_cast<double>(tokens.size()) * o.masked_lm_prob));
  const double num_to_predict = std::min(max_predictions, by_length);
  static thread_local std::vector<double> cdf;
  static thread_local int cdf_ngrams = 0;
  if (!o.geometric && cdf_ngrams != o.max_ngrams) {
    cdf = ngram_cdf(o.max_ngrams);
    cdf_ngrams = o.max_ngrams;
  }

  std::vector<std::int32_t> order(static_cast<std::size_t>(num_candidates));
  std::iota(order.begin(), order.end(), 0);
  rng.shuffle(std::span<std::int32_t>(order));

  const std::vector<std::int32_t> original = tokens;
  std::vector<char> covered(tokens.size(), 0);
  std::size_t masked = 0;
  // The positions of the n whole words from candidate `start` (fewer at the end of the sequence).
  auto ngram = [&](std::int32_t start, std::int64_t n) {
    const std::int64_t end = std::min<std::int64_t>(start + n, num_candidates);
    return std::span<const std::int32_t>(flat.data() + begin[start], static_cast<std::size_t>(begin[end] - begin[start]));
  };
  auto too_many = [&](std::size_t extra) { return static_cast<double>(masked + extra) > num_to_predict; };

  for (const std::int32_t start : order) {
    if (static_cast<double>(masked) >= num_to_predict) break;
    std::int64_t n = o.geometric ? std::min<std::int64_t>(rng.geometric(0.2), o.max_ngrams)
                                 : static_cast<std::int64_t>(rng.choice(cdf)) + 1;
    std::span<const std::int32_t> index_set = ngram(start, n);
    for (--n; too_many(index_set.size()) && n > 0; --n) index_set = ngram(start, n);
    if (too_many(index_set.size())) continue;
    if (std::any_of(index_set.begin(), index_set.end(), [&](std::int32_t i) { return covered[i] != 0; })) continue;
    for (const std::int32_t i : index_set) {
      covered[i] = 1;
      std::int32_t replacement = o.mask;
      if (o.bert_style && rng.random() >= 0.8)
        replacement = rng.random() < 0.5 ? original[i] : static_cast<std::int32_t>(rng.randint(0, o.vocab_size));
      tokens[i] = replacement;
      ++masked;
    }
    out.spans.emplace_back(index_set.begin(), index_set.end());
  }

  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (covered[i]) {
      out.positions.push_back(static_cast<std::int32_t>(i));
      out.labels.push_back(original[i]);
    }
  std::sort(out.spans.begin(), out.spans.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  return out;
}

}  // namespace tessera::bert_t5_indexed
