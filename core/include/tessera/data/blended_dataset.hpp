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
  BlendedDataset(std::vector<std::shared_ptr<const Dataset>> datasets, std::vector<double> weights, std::int64_t size,
                 std::vector<std::string> names = {});

  std::int64_t size() const override { return static_cast<std::int64_t>(indices_.dataset_index.size()); }
  void sample(std::int64_t index, const SampleView& out) const override;

  const BlendingIndices& indices() const { return indices_; }
  const std::vector<double>& weights() const { return weights_; }
  const std::vector<std::shared_ptr<const Dataset>>& datasets() const { return datasets_; }

 private:
  std::vector<std::shared_ptr<const Dataset>> datasets_;
  std::vector<double> weights_;
  BlendingIndices indices_;
};

}  // namespace tessera
