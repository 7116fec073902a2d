#include "tessera/train/data_sampler.hpp"

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/data/torch_randperm.hpp"
#include "tessera/error.hpp"

namespace tessera {

DataSamplerOptions read_data_sampler_options(const Config& config) {
  ConfigSection t = config.section("training");
  DataSamplerOptions o;
  o.cyclic = t.get_choice("dataloader_type", "single", {"single", "cyclic"}) == "cyclic";
  if (t.has("data_sharding")) {
    o.data_sharding = t.get_bool("data_sharding");
    if (!o.cyclic)
      throw ConfigError(fmt::format("training.data_sharding (in {}) shapes the cyclic data loader's epochs; with "
                                    "training.dataloader_type = \"single\" it would be ignored: set dataloader_type = "
                                    "\"cyclic\", or drop the key",
                                    t.origin("data_sharding")));
  }
  return o;
}

DataSampler::DataSampler(const DataSamplerOptions& options, std::int64_t total, std::int64_t micro, std::int64_t dp)
    : options_(options), micro_(micro), dp_(dp) {
  const std::int64_t block = micro * dp;
  epoch_samples_ = total / block * block;
  order_size_ = options.data_sharding ? total / block * micro : total / micro * micro;
  if (options.cyclic && epoch_samples_ == 0)
    throw Error(fmt::format("training.dataloader_type = \"cyclic\" reads epochs of whole micro_batch_size × "
                            "data-parallel blocks ({} samples), but the training split has {} samples",
                            block, total));
}

const std::vector<std::int64_t>& DataSampler::order(std::int64_t epoch) const {
  if (epoch != cached_epoch_) {
    cached_order_ = torch_randperm(order_size_, static_cast<std::uint64_t>(epoch));
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

std::vector<std::int64_t> DataSampler::microbatch(std::int64_t consumed, std::int64_t rank) const {
  std::vector<std::int64_t> indices(static_cast<std::size_t>(micro_));
  if (!options_.cyclic) {  // the r-th slice of the next micro·dp block
    for (std::int64_t i = 0; i < micro_; ++i) indices[static_cast<std::size_t>(i)] = consumed + rank * micro_ + i;
    return indices;
  }
  const std::int64_t epoch = consumed / epoch_samples_, in_epoch = consumed % epoch_samples_;
  const std::vector<std::int64_t>& perm = order(epoch);
  for (std::int64_t i = 0; i < micro_; ++i) {
    // Sharded: the bucket's (in_epoch / dp + i)-th entry, offset to rank r's bucket; else every dp-th.
    indices[static_cast<std::size_t>(i)] =
        options_.data_sharding ? rank * order_size_ + perm[static_cast<std::size_t>(in_epoch / dp_ + i)]
                               : perm[static_cast<std::size_t>(in_epoch + rank + dp_ * i)];
  }
  return indices;
}

std::string DataSampler::describe() const {
  if (!options_.cyclic) return "single: the training split in order, each global batch consecutive samples";
  return fmt::format("cyclic: epochs of {} samples, each in a new order (torch.randperm seeded with the epoch){}",
                     epoch_samples_,
                     options_.data_sharding ? fmt::format(", each data-parallel rank its own bucket of {}", order_size_)
                                            : "");
}

}  // namespace tessera
