// Megatron-LM's blending indices (helpers.cpp build_blending_indices, used by BlendableDataset):
// sample i of a blend comes from dataset dataset_index[i], its dataset_sample_index[i]-th sample.
// Greedy: sample i goes to the dataset with the largest error w_j·max(i, 1) − count_j (ties to the
// lowest j). After sample i each count is within one sample of w_j·max(i, 1) (Megatron aims one
// sample behind), so within two samples of its share w_j·(i + 1) of the prefix. Each dataset is asked for ceil(w_j · N · 1.005) samples, Megatron's margin.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace tessera {

struct BlendingIndices {
  std::vector<std::int32_t> dataset_index;         // size N
  std::vector<std::int64_t> dataset_sample_index;  // size N
  std::vector<std::int64_t> counts;                // samples taken from each dataset
};

// weights: normalised (normalize_blend_weights). Throws tessera::Error for no weights or size < 0.
BlendingIndices build_blending_indices(std::span<const double> weights, std::int64_t size);

// ceil(w_j · size · 1.005) for each normalised weight: the samples to ask each dataset for.
std::vector<std::int64_t> blend_samples_per_dataset(std::span<const double> weights, std::int64_t size);

}  // namespace tessera
