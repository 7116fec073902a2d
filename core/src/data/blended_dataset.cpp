#include "tessera/data/blended_dataset.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

BlendedDataset::BlendedDataset(std::vector<std::shared_ptr<const Dataset>> datasets, std::vector<double> weights,
                               std::int64_t size, std::vector<std::string> names)
    : datasets_(std::move(datasets)), weights_(std::move(weights)) {
  if (datasets_.empty() || datasets_.size() != weights_.size())
    throw Error(fmt::format("BlendedDataset: {} datasets and {} weights", datasets_.size(), weights_.size()));
  for (const auto& d : datasets_)
    if (!d) throw Error("BlendedDataset: a null dataset");
  indices_ = build_blending_indices(weights_, size);
  for (std::size_t j = 0; j < datasets_.size(); ++j)
    if (indices_.counts[j] > datasets_[j]->size())
      throw Error(fmt::format("BlendedDataset: the blend of {} samples takes {} from dataset {}{} (weight {:.4g}), "
                              "which has only {}",
                              size, indices_.counts[j], j, j < names.size() ? " (" + names[j] + ")" : std::string(),
                              weights_[j], datasets_[j]->size()));
}

void BlendedDataset::sample(std::int64_t index, const SampleView& out) const {
  if (index < 0 || index >= size())
    throw Error(fmt::format("BlendedDataset: sample {} out of range [0, {})", index, size()));
  const auto i = static_cast<std::size_t>(index);
  datasets_[static_cast<std::size_t>(indices_.dataset_index[i])]->sample(indices_.dataset_sample_index[i], out);
}

}  // namespace tessera
