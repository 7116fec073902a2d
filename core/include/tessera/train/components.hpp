// Building a run's pieces from a config: the plugins named by [tokenizer] plugin, [model] plugin,
// [optimizer] plugin, [data] plugin and [schedule] plugin. Shared by train, generate, bench and plan.
// Each `plugin` key is required (ConfigError naming the section): core has no default plugins; the
// `tessera` app fills in its defaults first (apps/tessera/plugin_defaults.hpp, docs/configs.md).
#pragma once
#include <memory>

#include "tessera/config.hpp"
#include "tessera/dataset.hpp"
#include "tessera/model.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/plugin.hpp"
#include "tessera/schedule.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

// The section's `plugin` key; ConfigError naming the section and file when it is not set.
std::string plugin_name(const ConfigSection& section);
PluginPtr<Tokenizer> build_tokenizer(const Config& config);
// [parallel]'s sizes (tp, pp, vpp, sequence_parallel), range-checked; the layout checks them
// against the world size. Shared by train and plan so that both accept the same configs.
ParallelSizes read_parallel_sizes(const Config& config);
// [training] micro_batch_size and global_batch_size (default micro × dp), the global batch checked
// to be a multiple of micro × dp. Shared by train and plan.
struct BatchSizes {
  std::int64_t micro = 4, global = 4;
};
BatchSizes read_batch_sizes(const Config& config, int dp);
// seed: [training] seed (initialisation and data order); compute_dtype: [training] precision's.
PluginPtr<Model> build_model(const Config& config, std::int64_t vocab_size, std::uint64_t seed,
                             std::shared_ptr<const Parallel> parallel = nullptr, DType compute_dtype = DType::f32);
PluginPtr<Optimizer> build_optimizer(const Config& config, const std::vector<Parameter*>& params,
                                     const OptimizerContext& context = {});
PluginPtr<DataSource> build_data(const Config& config, const DataRequest& request);
// [schedule] plugin when pp > 1 or when the config names one; otherwise null, which runs plain
// gradient accumulation.
PluginPtr<Schedule> build_schedule(const Config& config, const ParallelLayout& layout);

// Stacks samples [first, first + count) of a dataset into one microbatch: one [count, ...] tensor
// per field the data source produces (DataSource::fields).
Batch make_batch(const Dataset& dataset, const FieldSpecs& fields, std::int64_t first, std::int64_t count);
// The same for the samples at `indices`, in that order.
Batch make_batch(const Dataset& dataset, const FieldSpecs& fields, const std::vector<std::int64_t>& indices);

}  // namespace tessera
