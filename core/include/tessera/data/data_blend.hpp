// A [data] path key that names one dataset prefix or a weighted blend of them, as Megatron-LM's
// --data-path does: "prefix", or ["0.3", "prefix/a", "0.7", "prefix/b"] (weight, prefix pairs).
// The weights are normalised to sum to 1; a weight of 0 drops its prefix from the blend.
#pragma once
#include <string>
#include <vector>

namespace tessera {

class ConfigSection;

struct DataBlend {
  std::vector<std::string> prefixes;
  std::vector<double> weights;  // normalised, > 0, one per prefix
  bool weighted = false;        // given as a weighted list (a single string is not a blend)
  std::vector<std::string> dropped;  // prefixes given weight 0
};

// Reads `key` of section s (which must be set). ConfigError naming the key and its file for: a list
// of odd length or empty, a weight that is not a number, negative or not finite, weights summing to 0.
DataBlend read_data_blend(const ConfigSection& s, const std::string& key);

// Normalises weights to sum to 1 (sequential sum, as numpy's for short lists). Throws ConfigError
// (prefixed by `where`) for a negative or non-finite weight, or a sum that is not positive.
std::vector<double> normalize_blend_weights(const std::vector<double>& weights, const std::string& where);

}  // namespace tessera
