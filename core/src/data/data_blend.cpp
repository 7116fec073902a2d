#include "tessera/data/data_blend.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

namespace {

// numpy.sum over float64 (pairwise_sum in numpy's loops): 8 running sums in blocks of up to 128,
// halves (multiples of 8) above. Megatron-LM normalises the blend weights with numpy.sum, and the
// last bit of the weights decides ties of the blending indices, so the sum is added in numpy's order.
double numpy_sum(const double* a, std::size_t n) {
  if (n < 8) {
    double res = 0.0;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (std::size_t j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (std::size_t j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t half = n / 2;
  half -= half % 8;
  return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

}  // namespace

std::vector<double> normalize_blend_weights(const std::vector<double>& weights, const std::string& where) {
  if (weights.empty()) throw ConfigError(fmt::format("{}: no datasets to blend", where));
  for (std::size_t j = 0; j < weights.size(); ++j) {
    if (!std::isfinite(weights[j]) || weights[j] < 0.0)
      throw ConfigError(fmt::format("{}: weight {} of dataset {} is {}; weights must be finite and >= 0", where,
                                    weights[j], j, weights[j] < 0.0 ? "negative" : "not finite"));
  }
  const double sum = numpy_sum(weights.data(), weights.size());
  if (!(sum > 0.0)) throw ConfigError(fmt::format("{}: the weights sum to {}; at least one must be > 0", where, sum));
  std::vector<double> out(weights);
  for (double& w : out) w /= sum;
  return out;
}

DataBlend read_data_blend(const ConfigSection& s, const std::string& key) {
  const std::string origin = s.origin(key);
  const std::string where = origin == "--set" ? fmt::format("{}.{} (from --set)", s.name(), key)
                                              : fmt::format("{}.{} in {}", s.name(), key, origin);
  DataBlend b;
  if (s.is_string(key)) {
    b.prefixes = {s.get_string(key)};
    b.weights = {1.0};
    if (b.prefixes[0].empty()) throw ConfigError(fmt::format("{}: an empty dataset prefix", where));
    return b;
  }
  const std::vector<std::string> list = s.get_string_list(key, {});
  if (list.empty() || list.size() % 2 != 0)
    throw ConfigError(fmt::format(
        "{}: a weighted list alternates weights and prefixes, [\"0.3\", \"prefix/a\", \"0.7\", \"prefix/b\"], "
        "but this one has {} item(s){}",
        where, list.size(), list.empty() ? "" : " (an odd number)"));
  std::vector<double> raw;
  std::vector<std::string> prefixes;
  for (std::size_t i = 0; i < list.size(); i += 2) {
    const std::string& w = list[i];
    double v = 0.0;
    const char* end = w.data() + w.size();
    const auto r = std::from_chars(w.data(), end, v);
    if (w.empty() || r.ec != std::errc() || r.ptr != end)
      throw ConfigError(fmt::format("{}: item {} (\"{}\") is not a number; a weighted list alternates weights and "
                                    "prefixes, [\"0.3\", \"prefix/a\", \"0.7\", \"prefix/b\"]",
                                    where, i, w));
    if (list[i + 1].empty()) throw ConfigError(fmt::format("{}: item {} is an empty dataset prefix", where, i + 1));
    raw.push_back(v);
    prefixes.push_back(list[i + 1]);
  }
  const std::vector<double> normalized = normalize_blend_weights(raw, where);
  b.weighted = true;
  std::vector<double> kept;
  for (std::size_t j = 0; j < prefixes.size(); ++j) {
    if (raw[j] == 0.0) {
      b.dropped.push_back(prefixes[j]);
    } else {
      b.prefixes.push_back(prefixes[j]);
      kept.push_back(raw[j]);
    }
  }
  b.weights = normalize_blend_weights(kept, where);  // the same shares, over the datasets kept
  return b;
}

}  // namespace tessera
