#include "tessera/data/blended_dataset.hpp"

#include <filesystem>

#include <fmt/format.h>

#include "tessera/data/index_cache.hpp"
#include "tessera/data/index_cache_name.hpp"
#include "tessera/data/npy_file.hpp"
#include "tessera/error.hpp"

namespace tessera {

std::string blending_cache_stem(const std::string& dir, const std::string& split, const std::vector<double>& weights,
                                const std::vector<std::string>& prefixes, std::int64_t size, std::uint64_t seed) {
  std::string description = "BlendedDataset";
  for (const double w : weights) description += fmt::format(";{:.17g}", w);
  for (const auto& p : prefixes) description += ";" + p;
  description += fmt::format(";{};{}", size, seed);
  return (std::filesystem::path(dir) /
          fmt::format("blend_{}_{}_{}ns_{}s", stable_hash_hex(description), split, size, seed))
      .string();
}

BlendedDataset::BlendedDataset(std::vector<std::shared_ptr<const Dataset>> datasets, std::vector<double> weights,
                               std::int64_t size, std::vector<std::string> names, const std::string& cache_stem)
    : datasets_(std::move(datasets)), weights_(std::move(weights)) {
  if (datasets_.empty() || datasets_.size() != weights_.size())
    throw Error(fmt::format("BlendedDataset: {} datasets and {} weights", datasets_.size(), weights_.size()));
  for (const auto& d : datasets_)
    if (!d) throw Error("BlendedDataset: a null dataset");
  if (size < 0) throw Error(fmt::format("BlendedDataset: negative size {}", size));
  if (cache_stem.empty() || size == 0) {
    indices_ = build_blending_indices(weights_, size);
  } else {
    cache_paths_ = {cache_stem + "_dataset_index.npy", cache_stem + "_dataset_sample_index.npy"};
    const std::size_t k = datasets_.size();
    const IndexCacheFiles files{fmt::format("blending indices of {} samples from {} datasets", size, k), cache_paths_,
                                ""};
    auto load = [&](std::vector<MappedNpy>& f) -> std::string {
      if (f[0].shape() != std::vector<std::int64_t>{size} || f[1].shape() != std::vector<std::int64_t>{size})
        return fmt::format("the arrays are not [{}]", size);
      BlendingIndices x;
      x.dataset_index.resize(static_cast<std::size_t>(size));
      x.dataset_sample_index.resize(static_cast<std::size_t>(size));
      x.counts.assign(k, 0);
      for (std::int64_t i = 0; i < size; ++i) {
        const std::int64_t j = f[0].at(i), s = f[1].at(i);
        if (j < 0 || j >= static_cast<std::int64_t>(k))
          return fmt::format("dataset_index[{}] = {} is not one of the {} datasets", i, j, k);
        // Each dataset's samples are taken in order: the complete check of the file's consistency.
        if (s != x.counts[static_cast<std::size_t>(j)])
          return fmt::format("dataset_sample_index[{}] = {}, expected {}", i, s, x.counts[static_cast<std::size_t>(j)]);
        ++x.counts[static_cast<std::size_t>(j)];
        x.dataset_index[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(j);
        x.dataset_sample_index[static_cast<std::size_t>(i)] = s;
      }
      indices_ = std::move(x);
      return "";
    };
    std::vector<std::uint8_t> index8;
    std::vector<std::int16_t> index16;
    auto build = [&]() -> std::vector<NpyArrayRef> {
      indices_ = build_blending_indices(weights_, size);
      NpyArrayRef index;
      if (k <= 256) {
        index8.assign(indices_.dataset_index.begin(), indices_.dataset_index.end());
        index = {NpyDtype::u1, {size}, index8.data()};
      } else if (k <= 32768) {
        index16.assign(indices_.dataset_index.begin(), indices_.dataset_index.end());
        index = {NpyDtype::i2, {size}, index16.data()};
      } else {
        index = {NpyDtype::i4, {size}, indices_.dataset_index.data()};
      }
      return {index, {NpyDtype::i8, {size}, indices_.dataset_sample_index.data()}};
    };
    from_cache_ = load_or_build_index(files, load, build).from_cache;
  }
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
