// A Dataset that interleaves others by weight (Megatron-LM's BlendableDataset): sample i is sample
// dataset_sample_index[i] of dataset dataset_index[i] (blending_indices.hpp). Any Dataset works —
// GPT's, and BERT's or T5's later — as long as they all write the same fields.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tessera/data/blending_indices.hpp"
#include "tessera/dataset.hpp"

namespace tessera {

class BlendedDataset : public Dataset {
 public:
  // weights: normalised, one per dataset; size: the blend's samples. Throws Error when a dataset
  // holds fewer samples than the blend takes from it (names[j] names it in the message).
  // cache_stem: when not "", the blending indices are cached (tessera/data/index_cache.hpp) as
  // <cache_stem>_dataset_index.npy (uint8, or int16 past 256 datasets) and
  // <cache_stem>_dataset_sample_index.npy (int64), Megatron-Core's names and types; see
  // blending_cache_stem.
  BlendedDataset(std::vector<std::shared_ptr<const Dataset>> datasets, std::vector<double> weights, std::int64_t size,
                 std::vector<std::string> names = {}, const std::string& cache_stem = "");

  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.dataset_index.size()); }
  void sample(std::int64_t index, const SampleView& out) const override;

  const BlendingIndices& indices() const { return indices_; }
  const std::vector<double>& weights() const { return weights_; }
  const std::vector<std::shared_ptr<const Dataset>>& datasets() const { return datasets_; }
  // The cache files (empty when not cached), and whether the indices were read from them.
  const std::vector<std::string>& cache_paths() const { return cache_paths_; }
  bool indices_from_cache() const { return from_cache_; }

 private:
  std::vector<std::shared_ptr<const Dataset>> datasets_;
  std::vector<double> weights_;
  BlendingIndices indices_;
  std::vector<std::string> cache_paths_;
  bool from_cache_ = false;
};

// The stem of a blend's cache files: <dir>/blend_<hash>_<split>_<size>ns_<seed>s, hash the 16 hex
// digits of the FNV-1a (index_cache_name.hpp) of the weights (17 significant digits), the prefixes,
// the size and the seed, so another blend never reuses these files.
std::string blending_cache_stem(const std::string& dir, const std::string& split, const std::vector<double>& weights,
                                const std::vector<std::string>& prefixes, std::int64_t size, std::uint64_t seed);

}  // namespace tessera
