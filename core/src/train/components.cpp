#include "tessera/train/components.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"

namespace tessera {

// Core names no concrete plugin: a section's `plugin` is required here, and the app supplies its
// defaults (apps/tessera/plugin_defaults.cpp) before core reads the config.
std::string plugin_name(const ConfigSection& s) {
  if (!s.has("plugin"))
    throw ConfigError(fmt::format("[{0}] plugin is not set in {1}: name a {0} plugin (`tessera plugins` lists them)",
                                  s.name(), s.origin("plugin")));
  return s.get_string("plugin");
}

PluginPtr<Tokenizer> build_tokenizer(const Config& config) {
  ConfigSection s = config.section("tokenizer");
  return create_plugin<Tokenizer>("tokenizer", plugin_name(s), s);
}

namespace {

// Uneven pipeline stages: Megatron-LM's --decoder-first-pipeline-num-layers and
// --decoder-last-pipeline-num-layers, renamed --num-layers-in-first-pipeline-stage and
// --num-layers-in-last-pipeline-stage in later versions; either name, not both. 0: an even share.
// The model checks them against its layers (pipeline_layers.hpp).
std::int64_t read_stage_layers(const ConfigSection& p, const char* key, const char* alias) {
  if (p.has(key) && p.has(alias))
    throw ConfigError(fmt::format("parallel.{} (in {}) and parallel.{} (in {}) are one setting under Megatron-LM's old "
                                  "and new names: give one",
                                  key, p.origin(key), alias, p.origin(alias)));
  const char* used = p.has(alias) ? alias : key;
  return p.get_int(used, 0, 0, 100000);
}

void read_uneven_stages(const ConfigSection& p, ParallelSizes& sizes) {
  sizes.first_stage_layers =
      read_stage_layers(p, "decoder_first_pipeline_num_layers", "num_layers_in_first_pipeline_stage");
  sizes.last_stage_layers = read_stage_layers(p, "decoder_last_pipeline_num_layers", "num_layers_in_last_pipeline_stage");
  if ((sizes.first_stage_layers > 0 || sizes.last_stage_layers > 0) && p.has("num_layers_per_virtual_pipeline_stage"))
    throw ConfigError(fmt::format("parallel.num_layers_per_virtual_pipeline_stage (in {}) assumes even pipeline stages: "
                                  "with parallel.decoder_first_pipeline_num_layers / decoder_last_pipeline_num_layers "
                                  "give parallel.virtual_pipeline_model_parallel_size instead",
                                  p.origin("num_layers_per_virtual_pipeline_stage")));
}

// Megatron-LM's --account-for-embedding-in-pipeline-split / --account-for-loss-in-pipeline-split: the
// embedding (the loss) counts as a layer of the split (pipeline_layers.hpp checks the layers).
void read_counted_split(const ConfigSection& p, ParallelSizes& sizes) {
  sizes.embedding_in_split = p.get_bool("account_for_embedding_in_pipeline_split", false);
  sizes.loss_in_split = p.get_bool("account_for_loss_in_pipeline_split", false);
  if ((sizes.embedding_in_split || sizes.loss_in_split) && p.has("num_layers_per_virtual_pipeline_stage"))
    throw ConfigError(fmt::format("parallel.num_layers_per_virtual_pipeline_stage (in {}) counts model.num_layers "
                                  "only: with parallel.account_for_embedding_in_pipeline_split / "
                                  "account_for_loss_in_pipeline_split give parallel.virtual_pipeline_model_parallel_size "
                                  "instead",
                                  p.origin("num_layers_per_virtual_pipeline_stage")));
}

}  // namespace

ParallelSizes read_parallel_sizes(const Config& config) {
  ConfigSection p = config.section("parallel");
  ParallelSizes sizes;
  sizes.tp = static_cast<int>(p.get_int("tensor_model_parallel_size", 1, 1, 1 << 16));
  sizes.pp = static_cast<int>(p.get_int("pipeline_model_parallel_size", 1, 1, 1 << 16));
  sizes.vpp = static_cast<int>(p.get_int("virtual_pipeline_model_parallel_size", 1, 1, 64));  // message tags allow 64
  // Megatron-LM's --num-layers-per-virtual-pipeline-stage L: vpp = num_layers / pp / L.
  if (p.has("num_layers_per_virtual_pipeline_stage")) {
    const std::int64_t per_chunk = p.get_int("num_layers_per_virtual_pipeline_stage", 1, 1, 1 << 20);
    ConfigSection m = config.section("model");
    if (p.has("virtual_pipeline_model_parallel_size"))
      throw ConfigError(fmt::format("parallel.num_layers_per_virtual_pipeline_stage (in {}) and "
                                    "parallel.virtual_pipeline_model_parallel_size (in {}) say the same thing: give one",
                                    p.origin("num_layers_per_virtual_pipeline_stage"),
                                    p.origin("virtual_pipeline_model_parallel_size")));
    if (!m.has("num_layers"))
      throw ConfigError(fmt::format("parallel.num_layers_per_virtual_pipeline_stage (in {}) needs model.num_layers",
                                    p.origin("num_layers_per_virtual_pipeline_stage")));
    const std::int64_t layers = m.get_int("num_layers", 1, 1, 100000);
    if (layers % sizes.pp != 0 || (layers / sizes.pp) % per_chunk != 0 || layers / sizes.pp / per_chunk > 64)
      throw ConfigError(fmt::format(
          "parallel.num_layers_per_virtual_pipeline_stage = {} (in {}): model.num_layers ({}) must split into "
          "parallel.pipeline_model_parallel_size ({}) stages of whole model chunks of {} layers, at most 64 per stage",
          per_chunk, p.origin("num_layers_per_virtual_pipeline_stage"), layers, sizes.pp, per_chunk));
    sizes.vpp = static_cast<int>(layers / sizes.pp / per_chunk);
    if (sizes.vpp > 1 && sizes.pp == 1)
      throw ConfigError(fmt::format("parallel.num_layers_per_virtual_pipeline_stage = {} (in {}) makes {} model chunks "
                                    "per stage, which needs parallel.pipeline_model_parallel_size > 1",
                                    per_chunk, p.origin("num_layers_per_virtual_pipeline_stage"), sizes.vpp));
  }
  read_uneven_stages(p, sizes);
  read_counted_split(p, sizes);
  // Megatron-Core's --expert-model-parallel-size: the layout checks that it divides dp, the model
  // that it divides model.num_experts.
  sizes.ep = static_cast<int>(p.get_int("expert_model_parallel_size", 1, 1, 1 << 16));
  // Megatron-Core's --expert-tensor-parallel-size (default tp): 1 keeps every expert whole, the
  // tensor-parallel ranks holding different ones; the layout checks it against tp and ep.
  sizes.etp = static_cast<int>(p.get_int("expert_tensor_parallel_size", sizes.tp, 1, 1 << 16));
  if (sizes.etp != 1 && sizes.etp != sizes.tp)
    throw ConfigError(fmt::format("parallel.expert_tensor_parallel_size = {} (in {}) must be 1 (every expert whole, "
                                  "the tensor-parallel ranks holding different ones) or "
                                  "parallel.tensor_model_parallel_size ({}, each expert split over tp)",
                                  sizes.etp, p.origin("expert_tensor_parallel_size"), sizes.tp));
  if (sizes.etp == sizes.tp) sizes.etp = 0;
  // Megatron-Core's --context-parallel-size: each sequence split over cp ranks (the model checks
  // that 2·cp divides seq_length). Tessera's exchange is Megatron-Core's --cp-comm-type all_gather
  // (the keys and values gathered over the cp group); the other types move the same numbers by
  // other routes and are not built.
  sizes.cp = static_cast<int>(p.get_int("context_parallel_size", 1, 1, 1 << 16));
  p.get_choice("cp_comm_type", "all_gather", {"all_gather"});
  // Megatron-LM's sequence parallelism; the model checks what it needs (tp dividing seq_length),
  // and with tp = 1 it changes nothing.
  sizes.sequence_parallel = p.get_bool("sequence_parallel", false);
  // Encoder-decoder models (T5): the first decoder stage. Its range is checked against pp by the layout.
  sizes.pipeline_split_rank = static_cast<int>(p.get_int("pipeline_model_parallel_split_rank", 0, 0, 1 << 16));
  if (sizes.pipeline_split_rank != 0 && sizes.pipeline_split_rank >= sizes.pp)
    throw ConfigError(fmt::format("parallel.pipeline_model_parallel_split_rank ({}) in {} must be a pipeline stage in "
                                  "[1, {}) (parallel.pipeline_model_parallel_size is {}): the encoder takes the "
                                  "stages before it, the decoder the rest",
                                  sizes.pipeline_split_rank, p.origin("pipeline_model_parallel_split_rank"), sizes.pp,
                                  sizes.pp));
  return sizes;
}

BatchSizes read_batch_sizes(const Config& config, int dp) {
  ConfigSection t = config.section("training");
  BatchSizes b;
  b.micro = t.get_int("micro_batch_size", 4, 1, 1 << 20);
  b.global = t.get_int("global_batch_size", b.micro * dp, 1, 1 << 30);
  if (b.global % (b.micro * dp) != 0)
    throw ConfigError(fmt::format("training.global_batch_size ({}) in {} must be a multiple of training.micro_batch_size ({}) "
                                  "× data-parallel size ({})",
                                  b.global, t.origin("global_batch_size"), b.micro, dp));
  return b;
}

PluginPtr<Model> build_model(const Config& config, std::int64_t vocab_size, std::uint64_t seed,
                             std::shared_ptr<const Parallel> parallel, DType compute_dtype) {
  ConfigSection s = config.section("model");
  ModelContext context{vocab_size, seed, std::move(parallel), compute_dtype};
  return create_plugin<Model>("model", plugin_name(s), s, context);
}

PluginPtr<Optimizer> build_optimizer(const Config& config, const std::vector<Parameter*>& params,
                                     const OptimizerContext& context) {
  ConfigSection s = config.section("optimizer");
  return create_plugin<Optimizer>("optimizer", plugin_name(s), s, params, context);
}

PluginPtr<DataSource> build_data(const Config& config, const DataRequest& request) {
  ConfigSection s = config.section("data");
  return create_plugin<DataSource>("data", plugin_name(s), s, request);
}

PluginPtr<Schedule> build_schedule(const Config& config, const ParallelLayout& layout) {
  ConfigSection s = config.section("schedule");
  if (layout.pp() == 1 && !s.has("plugin")) return nullptr;
  return create_plugin<Schedule>("schedule", plugin_name(s), s);
}

Batch make_batch(const Dataset& dataset, const FieldSpecs& fields, std::int64_t first, std::int64_t count) {
  if (first < 0 || count < 0 || count > dataset.size() - first)  // first + count could overflow
    throw Error(fmt::format("{} samples from sample {} requested from a dataset of {} samples", count, first, dataset.size()));
  std::vector<std::int64_t> indices(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) indices[static_cast<std::size_t>(i)] = first + i;
  return make_batch(dataset, fields, indices);
}

Batch make_batch(const Dataset& dataset, const FieldSpecs& fields, const std::vector<std::int64_t>& indices) {
  const auto count = static_cast<std::int64_t>(indices.size());
  for (std::int64_t index : indices)
    if (index < 0 || index >= dataset.size())
      throw Error(fmt::format("sample {} requested from a dataset of {} samples", index, dataset.size()));
  Batch b;
  std::vector<Tensor> tensors;
  for (const FieldSpec& f : fields) {
    Shape shape{count};
    shape.insert(shape.end(), f.sample_shape.begin(), f.sample_shape.end());
    tensors.push_back(Tensor::empty(shape, f.dtype));
    b.set(f.name, tensors.back());
  }
  // Sample i writes row i of every field.
  for (std::int64_t i = 0; i < count; ++i) {
    SampleView view;
    for (std::size_t k = 0; k < fields.size(); ++k)
      view.add(fields[k], tensors[k].rows(i, i + 1).raw());
    dataset.sample(indices[static_cast<std::size_t>(i)], view);
  }
  return b;
}

}  // namespace tessera
