#include "tessera/train/checkpoint_reshard.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../config_data.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/nn/gather_parameter.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer_state_format.hpp"
#include "tessera/parallel/offline_communicator.hpp"
#include "tessera/plugin.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/components.hpp"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// One rank's model of a layout, built offline: what it holds is what that rank's files hold.
struct RankModel {
  PluginPtr<Model> model;
  std::vector<Parameter*> params;     // every saved tensor
  std::vector<Parameter*> trainable;  // those with optimizer state (Parameter::trainable)
};

// Under expert parallelism `ep_rank` says which experts the rank holds (the layout is built with
// dp = ep, which is all that the model depends on).
RankModel build_rank_model(const Config& config, std::int64_t vocab, const ParallelSizes& sizes, int tp_rank,
                           int pp_rank, const std::string& layout, int ep_rank = 0) {
  RankModel r;
  try {
    const int world_rank = tp_rank + sizes.tp * (ep_rank + sizes.ep * pp_rank);
    r.model = build_model(config, vocab, 0, offline_parallel(world_rank, sizes.tp * sizes.ep * sizes.pp, sizes));
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("the model does not fit {}: {}", layout, e.what()));
  }
  r.model->collect_parameters(r.params);
  r.trainable = trainable_parameters(r.params);
  return r;
}

std::string describe_sizes(const ParallelSizes& s, int dp) {
  std::string text = fmt::format("tp {} · pp {} · dp {}", s.tp, s.pp, dp);
  if (s.vpp > 1) text += fmt::format(" (vpp {})", s.vpp);
  if (s.pipeline_split_rank > 0) text += fmt::format(" (split rank {})", s.pipeline_split_rank);
  if (s.first_stage_layers > 0) text += fmt::format(" (first stage {} layers)", s.first_stage_layers);
  if (s.last_stage_layers > 0) text += fmt::format(" (last stage {} layers)", s.last_stage_layers);
  if (s.embedding_in_split) text += " (embedding counted as a layer)";
  if (s.loss_in_split) text += " (loss counted as a layer)";
  if (s.sequence_parallel && s.tp > 1) text += " (sequence parallel)";
  if (s.ep > 1) text += fmt::format(" (expert parallel {})", s.ep);
  return text;
}

// A tensor of the model, whole (every tensor-parallel shard joined), with its optimizer slots.
struct WholeTensor {
  Tensor value;
  std::vector<Tensor> slots;
  std::string file;  // the first file it was read from, for messages
};

ParameterSlots zero_slots(const std::vector<Parameter*>& params, std::size_t slots) {
  ParameterSlots out;
  for (const Parameter* p : params) out[p->name].assign(slots, Tensor{});
  for (const Parameter* p : params)
    for (Tensor& t : out[p->name]) t = Tensor::zeros(p->value.shape());
  return out;
}

// `whole` made to this layout's whole shape of `p`: identical, or (a padded vocabulary whose padding
// differs between the layouts) its first rows kept and the rest zero.
Tensor fit_whole(const Tensor& whole, const Parameter& p, const Shape& shape, const std::string& file) {
  if (whole.shape() == shape) return whole;
  const bool rows_only = whole.dim() == static_cast<std::int64_t>(shape.size()) && p.unpadded_rows >= 0 &&
                         whole.size(0) >= p.unpadded_rows && shape[0] >= p.unpadded_rows &&
                         std::equal(shape.begin() + 1, shape.end(), whole.shape().begin() + 1);
  if (!rows_only)
    throw FormatError(fmt::format("{}: tensor '{}' is {} whole, but the model in the new layout needs {} (did an "
                                  "override change the model?)",
                                  file, p.name, whole.str(), shape_str(shape)));
  Tensor out = Tensor::zeros(shape);
  const std::int64_t rows = std::min(whole.size(0), shape[0]);
  Tensor dst = out.rows(0, rows);
  ops::copy(whole.rows(0, rows), dst);
  return out;
}

// MemAvailable of /proc/meminfo in bytes; 0 where it cannot be read (then nothing is checked).
std::uint64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

// The reshard holds every tensor whole with its slots, plus one stage's shards while reading: a
// model larger than the memory at hand is an error before any work, not the kernel's OOM kill.
void check_memory(const CheckpointFolder& source, std::size_t num_slots) {
  std::uint64_t model_bytes = 0;
  std::error_code ec;
  for (std::int64_t p = 0; p < source.meta.pipeline_parallel; ++p)
    for (std::int64_t t = 0; t < source.meta.tensor_parallel; ++t) {
      const std::uintmax_t size =
          fs::file_size(source.dir / checkpoint_model_file(static_cast<int>(t), static_cast<int>(p)), ec);
      if (!ec) model_bytes += size;
    }
  const double needed = static_cast<double>(model_bytes) * static_cast<double>(1 + num_slots) *
                        (1.0 + 1.0 / static_cast<double>(source.meta.pipeline_parallel));
  const std::uint64_t available = available_memory();
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (available > 0 && needed > static_cast<double>(available))
    throw Error(fmt::format("resharding {} needs about {:.1f} GiB of memory (the whole model, {:.1f} GiB, with its "
                            "{} optimizer slot(s), and one pipeline stage's shards while reading), but {:.1f} GiB "
                            "are available (MemAvailable)",
                            source.dir.string(), needed / kGiB, static_cast<double>(model_bytes) / kGiB, num_slots,
                            static_cast<double>(available) / kGiB));
}

}  // namespace

ReshardResult reshard_checkpoint(const CheckpointFolder& source, const Config& config, const ReshardLayout& target,
                                 const std::vector<std::string>& overrides, const fs::path& out) {
  const CheckpointMetadata& meta = source.meta;
  const fs::path meta_path = source.dir / "metadata.json";

  // Expert tensor parallel size 1 puts whole experts on different tp ranks; moving them (and their
  // optimizer state) to another layout is not built yet.
  if (meta.expert_tensor_parallel == 1)
    throw ConfigError(fmt::format("{}: the checkpoint was saved with parallel.expert_tensor_parallel_size = 1, which "
                                  "`tessera checkpoint reshard` does not rewrite yet; tessera generate, evaluate and "
                                  "checkpoint export read its weights in any layout, and checkpoint.finetune = true "
                                  "with the same tensor and pipeline sizes (any expert sizes)",
                                  meta_path.string()));
  // The layouts. The source's sizes are the metadata's; its split rank is its config's.
  ParallelSizes from = read_parallel_sizes(config);
  from.etp = 0;  // as the metadata says (above): split over tp
  from.tp = static_cast<int>(meta.tensor_parallel);
  from.pp = static_cast<int>(meta.pipeline_parallel);
  from.vpp = static_cast<int>(meta.virtual_pipeline);
  from.first_stage_layers = meta.first_stage_layers;
  from.last_stage_layers = meta.last_stage_layers;
  from.embedding_in_split = meta.embedding_in_split;
  from.loss_in_split = meta.loss_in_split;
  from.sequence_parallel = meta.sequence_parallel;
  from.ep = static_cast<int>(meta.expert_parallel);
  const int from_dp = static_cast<int>(meta.data_parallel);
  ParallelSizes to = from;
  to.sequence_parallel = target.sequence_parallel.value_or(from.sequence_parallel);
  to.tp = target.tp;
  to.pp = target.pp;
  to.vpp = target.vpp;
  to.pipeline_split_rank = target.pipeline_split_rank;
  to.first_stage_layers = target.first_stage_layers;
  to.last_stage_layers = target.last_stage_layers;
  to.embedding_in_split = target.embedding_in_split;
  to.loss_in_split = target.loss_in_split;
  to.ep = target.ep;
  const std::int64_t bucket_size = target.bucket_size > 0 ? target.bucket_size : meta.bucket_size;
  const std::string from_text = describe_sizes(from, from_dp), to_text = describe_sizes(to, target.dp);
  if (target.tp < 1 || target.pp < 1 || target.dp < 1 || target.vpp < 1)
    throw ConfigError(fmt::format("reshard to {}: every size must be at least 1", to_text));
  const std::int64_t world = std::int64_t{target.tp} * target.pp * target.dp;
  if (world > (1 << 24))
    throw ConfigError(fmt::format("reshard to {}: {} ranks is more than Tessera lays out", to_text, world));
  ParallelLayout::make(0, static_cast<int>(world), to);  // vpp and split rank against pp

  // The new layout's config: the overrides, its sizes, and the global batch written out (its default
  // follows dp, and resuming needs the checkpoint's).
  for (const std::string& o : overrides)
    if (o.rfind("model.", 0) != 0)
      throw ConfigError(fmt::format("reshard --set {}: only [model] keys (model.key=value, e.g. "
                                    "model.make_vocab_size_divisible_by=64); the layout is set by --tp, --pp, --dp, "
                                    "--ep, --vpp, --split-rank, --first-stage-layers, --last-stage-layers, --account-for-embedding, "
                                    "--account-for-loss, --sequence-parallel and --bucket-size, the optimizer by "
                                    "--optimizer, and the rest of the run's config must stay the checkpoint's",
                                    quote_untrusted(o)));
  std::vector<std::string> new_settings = overrides;
  new_settings.push_back(fmt::format("parallel.sequence_parallel={}", to.sequence_parallel));
  new_settings.push_back(fmt::format("parallel.tensor_model_parallel_size={}", to.tp));
  new_settings.push_back(fmt::format("parallel.pipeline_model_parallel_size={}", to.pp));
  // A config that gives the chunks by their layers keeps doing so (the two keys exclude each other).
  if (config.section("parallel").has("num_layers_per_virtual_pipeline_stage"))
    new_settings.push_back(fmt::format("parallel.num_layers_per_virtual_pipeline_stage={}",
                                       config.section("model").get_int("num_layers", 1, 1, 100000) / (to.pp * to.vpp)));
  else
    new_settings.push_back(fmt::format("parallel.virtual_pipeline_model_parallel_size={}", to.vpp));
  new_settings.push_back(fmt::format("parallel.pipeline_model_parallel_split_rank={}", to.pipeline_split_rank));
  // Uneven stages under the name the config uses (Megatron-LM's old or new one); 0: even.
  const ConfigSection parallel = config.section("parallel");
  new_settings.push_back(fmt::format("parallel.{}={}",
                                     parallel.has("num_layers_in_first_pipeline_stage")
                                         ? "num_layers_in_first_pipeline_stage"
                                         : "decoder_first_pipeline_num_layers",
                                     to.first_stage_layers));
  new_settings.push_back(fmt::format("parallel.{}={}",
                                     parallel.has("num_layers_in_last_pipeline_stage")
                                         ? "num_layers_in_last_pipeline_stage"
                                         : "decoder_last_pipeline_num_layers",
                                     to.last_stage_layers));
  new_settings.push_back(fmt::format("parallel.account_for_embedding_in_pipeline_split={}", to.embedding_in_split));
  new_settings.push_back(fmt::format("parallel.account_for_loss_in_pipeline_split={}", to.loss_in_split));
  new_settings.push_back(fmt::format("parallel.bucket_size={}", bucket_size));
  new_settings.push_back(fmt::format("parallel.expert_model_parallel_size={}", to.ep));
  if (parallel.has("expert_tensor_parallel_size"))  // the experts stay split over tp
    new_settings.push_back(fmt::format("parallel.expert_tensor_parallel_size={}", to.tp));
  new_settings.push_back(fmt::format("training.global_batch_size={}", meta.global_batch_size));
  if (!target.optimizer.empty()) new_settings.push_back("optimizer.plugin=" + toml_quoted(target.optimizer));
  const Config to_config = Config::from_string(config.dump(), config.source(), new_settings);
  // The global batch, and a batch ramp's every batch, must divide over the new dp.
  const BatchSizes batch = read_batch_sizes(to_config, target.dp);
  if (meta.ramp.active() && (meta.ramp.start % (batch.micro * target.dp) || meta.ramp.increment % (batch.micro * target.dp)))
    throw ConfigError(fmt::format("the checkpoint's batch ramp (training.rampup_batch_size {}) does not divide over "
                                  "--dp {}: its start and increment must be multiples of micro_batch_size × dp = {}",
                                  describe_ramp(meta.ramp), target.dp, batch.micro * target.dp));
  const std::int64_t state_steps = meta.optimizer_steps - meta.optimizer_state_offset;

  const std::int64_t vocab = build_tokenizer(config)->vocab_size();
  // Null for an optimizer that exports no format: then its files must hold nothing but "step" (an
  // optimizer without state, such as plain SGD).
  const PluginPtr<OptimizerStateFormat> format = optimizer_state_format(config, meta.optimizer);
  // A checkpoint saved with checkpoint.no_save_optim has weights only: so has its reshard.
  const bool has_state = meta.optimizer_saved;
  const std::size_t num_slots = format && has_state ? format->slots().size() : 0;
  // The new layout's optimizer: the same, or one whose state has the same slots.
  const std::string optimizer = target.optimizer.empty() ? meta.optimizer : target.optimizer;
  PluginPtr<OptimizerStateFormat> to_format;
  if (optimizer != meta.optimizer && has_state) {
    to_format = optimizer_state_format(config, optimizer);
    const auto slots = [](const PluginPtr<OptimizerStateFormat>& f) {
      return f ? fmt::format("{}", fmt::join(f->slots(), ", ")) : std::string("none");
    };
    if (!to_format || !format || to_format->slots() != format->slots())
      throw ConfigError(fmt::format("reshard from optimizer '{}' to '{}': their state must be the same per parameter, "
                                    "but their \"optimizer_state\" formats hold {} and {}",
                                    plain_or_quoted(meta.optimizer), plain_or_quoted(optimizer), slots(format),
                                    slots(to_format)));
  }
  const OptimizerStateFormat* write_format = to_format ? to_format.get() : format.get();
  check_memory(source, num_slots);

  // Read: every old rank's files into whole tensors. A tensor two stages hold (a tied embedding) is
  // taken from the first; the trainer keeps the copies equal.
  std::map<std::string, WholeTensor> whole;
  bool saves_step = true;
  // Expert parallelism: each expert-parallel rank's model holds the same dense parameters and its own
  // experts; a model file holds every expert, an optimizer file its rank's experts' state.
  const bool replicated = format && format->replicated_over_dp();
  for (int p = 0; p < from.pp; ++p) {
    std::map<std::string, std::vector<Tensor>> values;
    std::map<std::string, std::vector<ParameterSlots::mapped_type>> slot_shards;
    std::vector<RankModel> first;
    for (int t = 0; t < from.tp; ++t) {
      std::vector<RankModel> ranks;
      std::vector<ParameterSlots> rank_slots;
      const fs::path model_file = source.dir / checkpoint_model_file(t, p);
      const std::map<std::string, Tensor> model_tensors = load_safetensors(model_file).tensors;
      for (int e = 0; e < from.ep; ++e) {
        ranks.push_back(build_rank_model(config, vocab, from, t, p, "the checkpoint's layout " + from_text, e));
        restore_model_file(model_tensors, ranks.back().params, from.ep, model_file.string(),  // handles: data shared
                           " (the checkpoint's config and weights disagree)");
        rank_slots.push_back(zero_slots(ranks.back().trainable, num_slots));
      }
      // Replicas: each expert-parallel rank's first data-parallel rank (dp rank e holds ep rank e's experts;
      // etp-1 checkpoints are refused above, so ep_dp is ep).
      const int dp_files = has_state ? OptimizerFiles{replicated, from_dp, from.ep}.writers() : 0;
      for (int d = 0; d < dp_files; ++d) {
        const RankModel& rank = ranks[static_cast<std::size_t>(d % from.ep)];
        ParameterSlots& slots = rank_slots[static_cast<std::size_t>(d % from.ep)];
        const fs::path file = source.dir / checkpoint_optimizer_file(t, p, d);
        SafetensorsFile state = load_safetensors(file);
        // Not every optimizer counts steps (the SGD example saves none): the new files follow the old.
        saves_step = state.tensors.count("step") > 0;
        if (saves_step && read_step_tensor(state.tensors, file.string()) != state_steps)
          throw FormatError(fmt::format("{}: the optimizer state is at step {}, but {} says {} optimizer steps ({} "
                                        "since its state began)",
                                        file.string(), read_step_tensor(state.tensors, file.string()),
                                        meta_path.string(), meta.optimizer_steps, state_steps));
        if (!format) {
          if (state.tensors.size() > (saves_step ? 1u : 0u))
            throw PluginError(fmt::format("{}: optimizer '{}' keeps state ({} tensors) but exports no "
                                          "\"optimizer_state\" format, so its state cannot be resharded "
                                          "(docs/writing-a-plugin.md)",
                                          file.string(), plain_or_quoted(meta.optimizer),
                                          state.tensors.size() - (saves_step ? 1 : 0)));
          continue;
        }
        OptimizerRankPosition at{rank.trainable, from.tp, from_dp, d, meta.bucket_size, from.ep};
        try {
          format->unpack(state.tensors, at, slots);
        } catch (const FormatError& e) {
          throw FormatError(fmt::format("{}: {}", file.string(), e.what()));
        }
      }
      for (std::size_t e = 0; e < ranks.size(); ++e)
        for (Parameter* param : ranks[e].params) {
          if (e > 0 && !param->expert_parallel) continue;  // the dense ones: ep rank 0's
          values[param->name].push_back(param->value);
          // A buffer has no optimizer slots: empty ones, never written.
          ParameterSlots::mapped_type slots(num_slots);
          if (param->trainable) slots = rank_slots[e].at(param->name);
          // A dense parameter's state sharded over every data-parallel rank: each ep rank's files
          // filled its shards, the rest are zero.
          if (param->trainable && !param->expert_parallel && !replicated)
            for (std::size_t other = 1; other < ranks.size(); ++other)
              for (std::size_t s = 0; s < num_slots; ++s) ops::add(slots[s], rank_slots[other].at(param->name)[s], slots[s]);
          slot_shards[param->name].push_back(std::move(slots));
        }
      if (t == 0) first = std::move(ranks);
    }
    std::vector<const Parameter*> stage_params;  // every ep rank's (the dense ones repeat: joined once)
    for (const RankModel& r : first) stage_params.insert(stage_params.end(), r.params.begin(), r.params.end());
    for (const Parameter* param : stage_params) {
      if (whole.count(param->name)) continue;
      const bool split = from.tp > 1 && param->tp_split_dim >= 0;
      const auto join = [&](const std::vector<Tensor>& shards) {
        return split ? assemble_tp_shards(shards, param->tp_split_dim, param->tp_split_blocks) : shards.front();
      };
      WholeTensor w;
      w.value = join(values.at(param->name));
      for (std::size_t s = 0; s < num_slots; ++s) {
        std::vector<Tensor> shards;
        for (const auto& rank_slots : slot_shards.at(param->name)) shards.push_back(rank_slots[s]);
        w.slots.push_back(join(shards));
      }
      w.file = (source.dir / checkpoint_model_file(0, p)).string();
      whole.emplace(param->name, std::move(w));
    }
  }

  // Write: every new rank's files, cut from the whole tensors.
  ReshardResult result;
  result.checkpoint = out / checkpoint_dir_name(meta.iteration);
  fs::create_directories(result.checkpoint);
  std::set<std::string> used, padding_changed;
  for (int p = 0; p < to.pp; ++p) {
    for (int t = 0; t < to.tp; ++t) {
      std::vector<RankModel> ranks;  // one per expert-parallel rank
      std::vector<ParameterSlots> rank_slots;
      NamedTensors tensors;  // the model file: ep rank 0's parameters and every other rank's experts
      for (int e = 0; e < to.ep; ++e) {
        ranks.push_back(build_rank_model(to_config, vocab, to, t, p, "the new layout " + to_text, e));
        RankModel& rank = ranks.back();
        // Every [model] key was read by the model built (a --set typo would otherwise be saved and fail later).
        if (p == 0 && t == 0 && e == 0) to_config.check_no_unknown_keys_in({"model"});
        rank_slots.push_back(zero_slots(rank.trainable, num_slots));
        ParameterSlots& slots = rank_slots.back();
        for (Parameter* param : rank.params) {
          auto it = whole.find(param->name);
          if (it == whole.end())
            throw FormatError(fmt::format("{}: the model in the new layout has a parameter '{}' that the checkpoint does "
                                          "not hold (did an override change the model?)",
                                          meta_path.string(), param->name));
          used.insert(param->name);
          const bool split = to.tp > 1 && param->tp_split_dim >= 0;
          Shape shape = param->value.shape();
          if (split) shape[static_cast<std::size_t>(param->tp_split_dim)] *= to.tp;
          if (it->second.value.shape() != shape) padding_changed.insert(param->name);
          const auto cut = [&](const Tensor& w, Tensor& dst) {
            const Tensor fitted = fit_whole(w, *param, shape, it->second.file);
            ops::copy(split ? tp_shard_of(fitted, param->tp_split_dim, param->tp_split_blocks, t, to.tp) : fitted, dst);
          };
          cut(it->second.value, param->value);
          if (param->trainable)
            for (std::size_t s = 0; s < num_slots; ++s) cut(it->second.slots[s], slots.at(param->name)[s]);
          if (e == 0 || param->expert_parallel) tensors.emplace_back(param->name, param->value);
        }
      }
      save_safetensors(result.checkpoint / checkpoint_model_file(t, p), tensors,
                       {{"format", "tessera-checkpoint"},
                        {"iteration", std::to_string(meta.iteration)},
                        {kTensorParallelSplitKey, tensor_parallel_split_json(ranks.front().params, tensors)}});
      // State replicated over dp: written by the first rank of each set of experts only (etp-1
      // checkpoints are refused above, so ep_dp is ep).
      const OptimizerFiles files{write_format && write_format->replicated_over_dp(), target.dp, to.ep};
      for (int d = 0; d < (has_state ? files.writers() : 0); ++d) {
        const auto e = static_cast<std::size_t>(d % to.ep);
        NamedTensors state;
        if (write_format)
          state = write_format->pack(rank_slots[e], OptimizerRankPosition{ranks[e].trainable, to.tp, target.dp, d,
                                                                           bucket_size, to.ep});
        if (saves_step) state.emplace_back("step", step_tensor(state_steps));
        save_safetensors(result.checkpoint / checkpoint_optimizer_file(t, p, d), state,
                         {{"format", "tessera-checkpoint"}, {"optimizer", optimizer}});
      }
    }
  }
  for (const auto& [name, w] : whole)
    if (!used.count(name))
      throw FormatError(fmt::format("{}: tensor '{}' is held by no rank of the new layout {} (did an override change "
                                    "the model?)",
                                    w.file, name, to_text));

  result.meta = meta;
  CheckpointMetadata& m = result.meta;
  m.world_size = world;
  m.tensor_parallel = target.tp;
  m.pipeline_parallel = target.pp;
  m.data_parallel = target.dp;
  m.virtual_pipeline = target.vpp;
  m.first_stage_layers = target.first_stage_layers;
  m.last_stage_layers = target.last_stage_layers;
  m.embedding_in_split = target.embedding_in_split;
  m.loss_in_split = target.loss_in_split;
  m.sequence_parallel = to.sequence_parallel;
  m.expert_parallel = to.ep;
  m.bucket_size = bucket_size;
  m.optimizer = optimizer;
  // The saved config keeps its tokenizer files relative to the folder; they are copied along.
  m.config = Config::from_string(meta.config, meta_path.string() + " (config)", new_settings).dump();
  std::error_code ec;
  if (fs::is_directory(source.dir / "tokenizer", ec))
    fs::copy(source.dir / "tokenizer", result.checkpoint / "tokenizer", fs::copy_options::recursive);
  write_file_atomically(result.checkpoint / "metadata.json", checkpoint_metadata_json(m));
  write_file_atomically(out / kLatestCheckpointFile, std::to_string(meta.iteration) + "\n");
  result.padding_changed.assign(padding_changed.begin(), padding_changed.end());
  return result;
}

}  // namespace tessera
