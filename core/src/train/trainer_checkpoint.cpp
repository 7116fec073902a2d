// Trainer's resumable checkpoints (docs/checkpoints.md): save_checkpoint and load_checkpoint.
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/logging.hpp"
#include "tessera/parallel/gather_stages.hpp"
#include "tessera/quote.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/saved_model.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera {

namespace fs = std::filesystem;

OptimizerFiles Trainer::optimizer_files() const {
  const ParallelLayout& layout = parallel_->layout;
  return {optimizer_state_replicated_, layout.dp(), layout.ep_dp()};
}

NamedTensors Trainer::with_all_experts(NamedTensors tensors, std::vector<bool> expert, bool every_tp_rank) const {
  if (parallel_->layout.ep() == 1) return tensors;
  tensors = gather_experts_to_first_rank(tensors, expert, *parallel_->groups.ep);
  if (parallel_->layout.expert_tp_slices() == 1) return tensors;
  // Expert tensor parallel size 1: the tp ranks (of data-parallel rank 0; the other ranks here have
  // nothing) hold other experts; collect them on tp rank 0, or share them with every tp rank.
  expert.resize(tensors.size(), true);
  if (!every_tp_rank) return gather_experts_to_first_rank(tensors, expert, *parallel_->groups.tp);
  NamedTensors own_dense, own_experts;
  for (std::size_t i = 0; i < tensors.size(); ++i) (expert[i] ? own_experts : own_dense).push_back(tensors[i]);
  NamedTensors every_expert =
      broadcast_from_first_rank(gather_to_first_rank(own_experts, *parallel_->groups.tp), *parallel_->groups.tp);
  own_dense.insert(own_dense.end(), every_expert.begin(), every_expert.end());
  return own_dense;
}

void Trainer::save_checkpoint(std::int64_t iteration) const {
  const ParallelLayout& layout = parallel_->layout;
  Communicator& world = *parallel_->groups.world;
  const fs::path root(options_.save_dir), final_dir = root / checkpoint_dir_name(iteration);
  const fs::path tmp = root / (checkpoint_dir_name(iteration) + ".tmp");
  // Every rank writes into the temporary folder (one file system seen by all ranks); world rank 0
  // renames it into place once all have written, so iter_XXXXXXX/ is complete or absent.
  run_on_all_or_throw(world, fmt::format("saving checkpoint {}", final_dir.string()), [&] {
    if (world.rank() != 0) return;
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  });
  // A save that fails on any rank leaves no .tmp folder behind (the previous checkpoints stay).
  try {
    const int t = layout.tp_rank(), p = layout.pp_rank(), d = layout.dp_rank();
    run_on_all_or_throw(world, fmt::format("saving checkpoint {}", final_dir.string()), [&] {
      // Data-parallel replicas hold the same parameters: one file per (tp, pp) shard, with every
      // expert collected from the expert-parallel group of data-parallel rank 0.
      NamedTensors tensors;
      if (layout.expert_dp_rank() == 0) {
        std::vector<bool> expert;
        for (const Parameter* param : params_) {
          tensors.emplace_back(param->name, param->value);
          expert.push_back(param->expert_parallel);
        }
        tensors = with_all_experts(std::move(tensors), std::move(expert), /*every_tp_rank=*/true);
      }
      // Context-parallel ranks hold the same parameters and optimizer state too: cp rank 0 writes.
      const bool writer = layout.cp_rank() == 0;
      if (d == 0 && writer) {
        save_safetensors(tmp / checkpoint_model_file(t, p), tensors,
                         {{"format", "tessera-checkpoint"},
                          {"iteration", std::to_string(iteration)},
                          {kTensorParallelSplitKey, tensor_parallel_split_json(params_, tensors)}});
      }
      // Optimizer state: distributed_adam's differs per dp rank, so every rank writes its own; adam's is
      // replicated over dp, so only the first rank of each set of experts writes it.
      if (!options_.no_save_optim && d < optimizer_files().writers() && writer)
        save_safetensors(tmp / checkpoint_optimizer_file(t, p, d), optimizer_->state(),
                         {{"format", "tessera-checkpoint"}, {"optimizer", optimizer_plugin_}});
      if (world.rank() == 0) {
        CheckpointMetadata meta;
        meta.iteration = iteration;
        meta.consumed_samples = consumed_samples_;
        meta.optimizer = optimizer_plugin_;
        meta.optimizer_steps = iteration - skipped_iterations_;  // one step per iteration not skipped
        meta.optimizer_state_offset = optimizer_state_offset_;
        meta.optimizer_saved = !options_.no_save_optim;
        meta.skipped_iterations = skipped_iterations_;
        if (scaler_.active()) {
          const LossScaler::State scaler = scaler_.state();
          meta.loss_scale = scaler.scale;
          meta.loss_scale_growth_tracker = scaler.growth_tracker;
          meta.loss_scale_hysteresis_tracker = scaler.hysteresis_tracker;
        }
        meta.world_size = world.size() / layout.cp();  // the files' layout: the same for any cp
        meta.tensor_parallel = layout.tp();
        meta.pipeline_parallel = layout.pp();
        meta.data_parallel = layout.dp();
        meta.virtual_pipeline = layout.vpp();
        meta.expert_parallel = layout.ep();
        meta.expert_tensor_parallel = layout.experts_whole_over_tp() ? 1 : 0;
        meta.first_stage_layers = layout.sizes().first_stage_layers;
        meta.last_stage_layers = layout.sizes().last_stage_layers;
        meta.embedding_in_split = layout.sizes().embedding_in_split;
        meta.loss_in_split = layout.sizes().loss_in_split;
        meta.sequence_parallel = layout.sequence_parallel();
        meta.bucket_size = options_.bucket_size;
        meta.global_batch_size = options_.global_batch_size;
        meta.seed = options_.seed;
        meta.param_schedule = param_schedule_;
        meta.ramp = options_.ramp;
        meta.scheduler_samples = scheduled_samples_;
        meta.config = config_for_saved_folder(config_, *tokenizer_, tmp);  // tokenizer files copied beside it
        write_file_atomically(tmp / "metadata.json", checkpoint_metadata_json(meta));
      }
    });
  } catch (...) {
    std::error_code ec;
    if (world.rank() == 0) fs::remove_all(tmp, ec);
    throw;
  }
  // Put in place without a moment where neither the old iter_XXXXXXX (which "latest" may name:
  // a run resumed into its own save folder) nor the new one exists.
  run_on_all_or_throw(world, fmt::format("saving checkpoint {}", final_dir.string()), [&] {
    if (world.rank() != 0) return;
    const fs::path old = root / (checkpoint_dir_name(iteration) + ".old");
    fs::remove_all(old);
    if (fs::exists(final_dir)) fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    write_file_atomically(root / kLatestCheckpointFile, std::to_string(iteration) + "\n");
    fs::remove_all(old);
    log_info("saved checkpoint at iteration {} to {}", iteration, final_dir.string());
  });
}

void Trainer::load_checkpoint() {
  const ParallelLayout& layout = parallel_->layout;
  // Final weights only — a save folder of a run without checkpoints, a model imported by `tessera
  // checkpoint import`: nothing to resume (no iteration, no optimizer state), so training starts at
  // iteration 1 from these weights with a fresh optimizer (Megatron-LM's --finetune), in any layout.
  {
    const fs::path load(options_.load_dir);
    std::error_code ec;
    if (!fs::exists(load / "metadata.json", ec) && !fs::exists(load / kLatestCheckpointFile, ec) &&
        fs::is_regular_file(load / "config.toml", ec) && fs::is_regular_file(load / "model.safetensors", ec)) {
      const SavedModel saved = open_saved_model(load);
      load_saved_weights(saved, params_, SavedWeightsTarget{layout.tp_rank(), layout.tp(), layout.pp() == 1, false, layout.ep()});
      log_info("checkpoint.load = {} holds final weights only (no resumable checkpoint): training starts at iteration "
               "1 from them with a fresh optimizer",
               options_.load_dir);
      return;
    }
  }
  // Named with where it was set: a config's load that another save override left behind shows up.
  const auto [dir, meta] = open_checkpoint(
      options_.load_dir, fmt::format("checkpoint.load = {} ({})", options_.load_dir, config_.section("checkpoint").origin("load")));
  const fs::path meta_path = dir / "metadata.json";
  const std::int64_t iteration = meta.iteration;
  const std::int64_t tp = meta.tensor_parallel, pp = meta.pipeline_parallel, dp = meta.data_parallel,
                     vpp = meta.virtual_pipeline;
  // finetune and no_load_optim read the model files only, which do not depend on dp.
  const bool loads_optimizer = !options_.finetune && !options_.no_load_optim;
  // The stages' layers, which the model files follow: "even", uneven as "first 2, last even", or
  // "even, counting the embedding".
  const auto stages = [](std::int64_t first, std::int64_t last, bool embedding, bool loss) {
    if (embedding || loss)
      return fmt::format("even, counting the {}", embedding && loss ? "embedding and loss" : embedding ? "embedding" : "loss");
    if (first == 0 && last == 0) return std::string("even");
    return fmt::format("first {}, last {}", first > 0 ? std::to_string(first) : "even",
                       last > 0 ? std::to_string(last) : "even");
  };
  // The model files hold every expert; the optimizer files hold each rank's own experts' state.
  if (loads_optimizer && meta.expert_parallel != layout.ep())
    throw ConfigError(fmt::format("checkpoint {} was saved with parallel.expert_model_parallel_size {}, this run has {}: "
                                  "resuming needs the same (its optimizer files hold each rank's experts' state): "
                                  "`tessera checkpoint reshard {} --ep {} OUT` rewrites it for this one, and "
                                  "checkpoint.finetune = true or checkpoint.no_load_optim = true load its weights in "
                                  "any expert-parallel size",
                                  dir.string(), meta.expert_parallel, layout.ep(), dir.string(), layout.ep()));
  const ParallelSizes& sizes = layout.sizes();
  const bool same_stages =
      meta.first_stage_layers == sizes.first_stage_layers && meta.last_stage_layers == sizes.last_stage_layers &&
      meta.embedding_in_split == sizes.embedding_in_split && meta.loss_in_split == sizes.loss_in_split;
  if (tp != layout.tp() || pp != layout.pp() || (dp != layout.dp() && loads_optimizer) || vpp != layout.vpp() ||
      !same_stages)
    throw ConfigError(fmt::format(
        "checkpoint {} was saved with tensor/pipeline/data/virtual-pipeline parallel sizes {}/{}/{}/{} (stage layers: "
        "{}), this run has {}/{}/{}/{} (stage layers: {}): {} needs the same layout; `tessera checkpoint reshard {} --tp {} "
        "--pp {} --dp {} --vpp {}{}{} OUT` rewrites it for this one (docs/checkpoints.md)",
        dir.string(), tp, pp, dp, vpp,
        stages(meta.first_stage_layers, meta.last_stage_layers, meta.embedding_in_split, meta.loss_in_split), layout.tp(),
        layout.pp(), layout.dp(), layout.vpp(),
        stages(sizes.first_stage_layers, sizes.last_stage_layers, sizes.embedding_in_split, sizes.loss_in_split),
        loads_optimizer ? "resuming" : "loading its weights (all but the data-parallel size)", dir.string(), layout.tp(),
        layout.pp(), layout.dp(), layout.vpp(),
        layout.pipeline_split_rank() > 0 ? fmt::format(" --split-rank {}", layout.pipeline_split_rank()) : "",
        !same_stages ? fmt::format(" --first-stage-layers {} --last-stage-layers {} --account-for-embedding {} "
                                   "--account-for-loss {}",
                                   sizes.first_stage_layers, sizes.last_stage_layers, sizes.embedding_in_split,
                                   sizes.loss_in_split)
                     : ""));
  const int t = layout.tp_rank(), p = layout.pp_rank(), d = layout.dp_rank();
  const std::int64_t etp_here = layout.experts_whole_over_tp() ? 1 : 0;
  if (loads_optimizer && meta.expert_tensor_parallel != etp_here)
    throw ConfigError(fmt::format("checkpoint {} was saved with parallel.expert_tensor_parallel_size {}, this run has "
                                  "{}: resuming needs the same (its optimizer files hold each rank's experts' state, "
                                  "which `tessera checkpoint reshard` does not move between them yet); "
                                  "checkpoint.finetune = true or checkpoint.no_load_optim = true load its weights",
                                  dir.string(), meta.expert_tensor_parallel == 1 ? 1 : tp, etp_here == 1 ? 1 : layout.tp()));
  const auto load_model_file = [&] {
    if (meta.expert_tensor_parallel != etp_here) {  // the experts whole in one and split in the other: join, then cut
      load_saved_weights(open_saved_model(dir), params_,
                         SavedWeightsTarget{layout.tp_rank(), layout.tp(), layout.pp() == 1, true, layout.ep()});
      return;
    }
    const fs::path path = dir / checkpoint_model_file(t, p);
    restore_model_file(load_safetensors(path).tensors, params_, layout.ep(), path.string());
  };
  if (options_.finetune) {  // Megatron-LM's --finetune: the weights, nothing of the run's state
    load_model_file();
    log_info("checkpoint.finetune: the weights of checkpoint {} (iteration {}); training starts at iteration 1 with a "
             "fresh optimizer, learning-rate schedule and data order",
             dir.string(), iteration);
    return;
  }
  if (loads_optimizer && !meta.optimizer_saved)
    throw ConfigError(fmt::format("checkpoint {} was saved without its optimizer state (checkpoint.no_save_optim): "
                                  "set checkpoint.no_load_optim = true to resume from its weights and iteration with a "
                                  "fresh optimizer, or checkpoint.finetune = true to start a new run from its weights",
                                  dir.string()));
  if (loads_optimizer && meta.optimizer != optimizer_plugin_)
    throw ConfigError(fmt::format("checkpoint {} holds the state of optimizer '{}', this run's optimizer.plugin is '{}'",
                                  dir.string(), plain_or_quoted(meta.optimizer), optimizer_plugin_));
  // With tp > 1, sequence parallelism makes the norms' gradients tp-reduced, which buckets them apart:
  // a sharded optimizer's shards change with it.
  if (loads_optimizer && optimizer_->gradient_shards() && layout.tp() > 1 &&
      meta.sequence_parallel != layout.sequence_parallel())
    throw ConfigError(fmt::format("checkpoint {} was saved with parallel.sequence_parallel = {}, this run has {}: {}'s "
                                  "state is sharded by gradient bucket and sequence parallelism changes the buckets "
                                  "(`tessera checkpoint reshard {} --sequence-parallel {} OUT` rewrites it)",
                                  dir.string(), meta.sequence_parallel, layout.sequence_parallel(), optimizer_plugin_,
                                  dir.string(), layout.sequence_parallel()));
  if (loads_optimizer && optimizer_->gradient_shards() && meta.bucket_size != options_.bucket_size)
    throw ConfigError(fmt::format("checkpoint {} was saved with parallel.bucket_size {}, this run has {}: {}'s state "
                                  "is sharded by gradient bucket, so it must be the same (`tessera checkpoint reshard "
                                  "{} --bucket-size {} OUT` rewrites it)",
                                  dir.string(), meta.bucket_size, options_.bucket_size, optimizer_plugin_, dir.string(),
                                  options_.bucket_size));
  // The data order and dropout masks are functions of the seed and of consumed samples in blocks of
  // the global batch: a different one would not continue the run.
  if (meta.seed != options_.seed || meta.global_batch_size != options_.global_batch_size)
    throw ConfigError(fmt::format("checkpoint {} was saved with training.seed {} and global_batch_size {}, this run has "
                                  "{} and {}: resuming needs the same, or the data order and dropout masks change",
                                  dir.string(), meta.seed, meta.global_batch_size, options_.seed,
                                  options_.global_batch_size));
  // The ramp fixes each iteration's batch, so the data position of every iteration after this one.
  if (meta.ramp != options_.ramp)
    throw ConfigError(fmt::format("checkpoint {} was saved with training.rampup_batch_size {}, this run has {}: "
                                  "resuming needs the same batch ramp (it places every iteration's samples)",
                                  dir.string(), describe_ramp(meta.ramp), describe_ramp(options_.ramp)));
  // At train_iters the run is finished (Megatron-LM skips its loop): the same command run again, or
  // one that crashed before its final weights, writes them. Past it, train_iters was lowered: a mistake.
  if (iteration > options_.train_iters)
    throw ConfigError(fmt::format("checkpoint {} is at iteration {}, past training.train_iters = {} (lowered since it was "
                                  "saved?): nothing left to train. Set train_iters to at least {} to go on",
                                  dir.string(), iteration, options_.train_iters, iteration));

  adopt_checkpoint_schedule(meta, dir);

  load_model_file();
  if (loads_optimizer) {
    const fs::path path = dir / checkpoint_optimizer_file(t, p, optimizer_files().file_of(d));
    SafetensorsFile file = load_safetensors(path);
    const std::int64_t state_steps = meta.optimizer_steps - meta.optimizer_state_offset;
    if (file.tensors.count("step") && read_step_tensor(file.tensors, path.string()) != state_steps)
      throw FormatError(fmt::format("{}: the optimizer state is at step {}, but {} says {} optimizer steps{}",
                                    path.string(), read_step_tensor(file.tensors, path.string()),
                                    meta_path.string(), meta.optimizer_steps,
                                    meta.optimizer_state_offset > 0
                                        ? fmt::format(", {} of them before its state began", meta.optimizer_state_offset)
                                        : std::string()));
    try {
      optimizer_->load_state(file.tensors);
    } catch (const FormatError& e) {
      throw FormatError(fmt::format("{}: {}", path.string(), e.what()));
    }
  }
  consumed_samples_ = meta.consumed_samples;
  skipped_iterations_ = meta.skipped_iterations;
  // A fresh optimizer (no_load_optim) counts its steps from here.
  optimizer_state_offset_ = loads_optimizer ? meta.optimizer_state_offset : meta.optimizer_steps;
  scheduled_samples_ = meta.scheduler_samples;
  iterations_done_ = iteration;
  // The scaler's state from the checkpoint when it used one (a run that switches precision starts
  // its scaler afresh; Megatron-LM keeps it in the optimizer's state, so no_load_optim starts it afresh too).
  if (loads_optimizer && scaler_.active() && (meta.loss_scale != 1.0 || meta.loss_scale_hysteresis_tracker > 0))
    scaler_.load({meta.loss_scale, meta.loss_scale_growth_tracker, meta.loss_scale_hysteresis_tracker});
  start_iteration_ = iteration;
  if (iteration == options_.train_iters)
    log_info("resumed from checkpoint {}: iteration {} = training.train_iters{}, nothing left to train (raise {} to "
             "train on: with the default optimizer.{} that changes the schedule, see "
             "optimizer.override_opt_param_scheduler)",
             dir.string(), iteration,
             options_.train_samples > 0 ? fmt::format(" (of training.train_samples = {})", options_.train_samples) : "",
             options_.train_samples > 0 ? "train_samples" : "train_iters",
             options_.train_samples > 0 ? "lr_decay_samples" : "lr_decay_iters");
  else
    log_info("resumed from checkpoint {}: iteration {}, {} consumed samples; training continues at iteration {}{}",
             dir.string(), iteration, meta.consumed_samples, iteration + 1,
             loads_optimizer ? "" : " with a fresh optimizer (checkpoint.no_load_optim)");
}

// As Megatron-LM's OptimizerParamScheduler.load_state_dict: the checkpoint's schedule must be this
// config's unless override_opt_param_scheduler (this config's from here on) or
// use_checkpoint_opt_param_scheduler (the checkpoint's) says which to follow.
void Trainer::adopt_checkpoint_schedule(const CheckpointMetadata& meta, const fs::path& dir) {
  if (!meta.param_schedule) return;  // written before checkpoints recorded it
  const ConfigSection s = config_.section("optimizer");
  const std::vector<std::string> changed = schedule_differences(*meta.param_schedule, param_schedule_);
  if (changed.empty()) return;
  switch (schedule_on_resume_) {
    case ScheduleOnResume::use_config:
      log_info("optimizer.override_opt_param_scheduler ({}): the schedule follows this config, not checkpoint {}: {}",
               s.origin("override_opt_param_scheduler"), dir.string(), fmt::join(changed, "; "));
      return;
    case ScheduleOnResume::use_checkpoint:
      param_schedule_ = *meta.param_schedule;
      log_info("optimizer.use_checkpoint_opt_param_scheduler ({}): the schedule is checkpoint {}'s, not this config's: {}",
               s.origin("use_checkpoint_opt_param_scheduler"), dir.string(), fmt::join(changed, "; "));
      return;
    case ScheduleOnResume::must_match:
      throw ConfigError(fmt::format(
          "checkpoint {} was trained with another learning-rate or weight-decay schedule than {} gives: {}. Set "
          "optimizer.override_opt_param_scheduler = true to follow this config from iteration {} on, or "
          "optimizer.use_checkpoint_opt_param_scheduler = true to keep the checkpoint's (Megatron-LM's "
          "--override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler)",
          dir.string(), config_.source(), fmt::join(changed, "; "), meta.iteration + 1));
  }
}

}  // namespace tessera
