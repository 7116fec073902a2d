// Which training samples each data-parallel rank reads at each step: Megatron-LM's
// --dataloader-type. "single" (MegatronPretrainingSampler) reads the dataset in order, each global
// batch a block of consecutive samples, dp rank r the r-th micro-sized slice of each micro·dp
// block. "cyclic" (MegatronPretrainingRandomSampler) reads it in epochs, each epoch a new order:
//   - with data_sharding (the default, as Megatron-LM's): the dataset's first
//     ⌊total / (micro·dp)⌋·micro·dp samples are dp buckets of consecutive samples; rank r reads its
//     bucket in the order torch.randperm(bucket, seed = epoch);
//   - without: one order torch.randperm(⌊total / micro⌋·micro, seed = epoch) for all, rank r
//     reading every dp-th entry from r, so a global batch holds the same samples for any dp.
// An epoch ends after ⌊total / (micro·dp)⌋·micro·dp samples; the order depends on the epoch only
// (not on training.seed), as Megatron-LM's. One difference: unsharded, Megatron-LM's order has
// ⌊total / micro⌋·micro entries, and where that is more than the epoch its ranks read on into the
// surplus unevenly (some one microbatch more than others) and its later epochs start off the
// consumed count; here every rank's epoch ends at the same sample. Stateless: a microbatch's samples follow from the
// samples consumed before it, so a resumed run reads on as the uninterrupted one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

class Config;

struct DataSamplerOptions {
  bool cyclic = false;        // training.dataloader_type = "cyclic" (default "single")
  bool data_sharding = true;  // training.data_sharding (Megatron-LM's --no-data-sharding: false)
};

// Reads [training] dataloader_type and data_sharding (ConfigErrors name the key and its file).
DataSamplerOptions read_data_sampler_options(const Config& config);

class DataSampler {
 public:
  // `total`: the training split's samples; `micro` samples per microbatch on each of `dp` ranks.
  // Throws Error when a cyclic epoch would be empty (fewer than micro·dp samples).
  DataSampler(const DataSamplerOptions& options, std::int64_t total, std::int64_t micro, std::int64_t dp);
  // The dataset indices of the microbatch dp rank `rank` reads when `consumed` samples (over all
  // ranks, a multiple of micro·dp) were read before it.
  std::vector<std::int64_t> microbatch(std::int64_t consumed, std::int64_t rank) const;
  std::string describe() const;

 private:
  const std::vector<std::int64_t>& order(std::int64_t epoch) const;  // this epoch's, made once
  DataSamplerOptions options_;
  std::int64_t micro_, dp_;
  std::int64_t epoch_samples_;  // cyclic: samples read per epoch (⌊total / (micro·dp)⌋·micro·dp)
  std::int64_t order_size_;     // cyclic: the permutation's length (a bucket, or the whole)
  mutable std::int64_t cached_epoch_ = -1;
  mutable std::vector<std::int64_t> cached_order_;
};

}  // namespace tessera
