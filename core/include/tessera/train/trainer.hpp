// The training loop every model shares: microbatches with gradient accumulation up to
// global_batch_size, LR warmup and decay, gradient clipping by global norm, periodic validation,
// Megatron-style iteration lines, a run summary, and the final weights saved for `generate`.
#pragma once
#include <chrono>
#include <filesystem>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tessera/config.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/train/batch_ramp.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/components.hpp"
#include "tessera/train/data_sampler.hpp"
#include "tessera/train/graceful_stop.hpp"
#include "tessera/train/grad_buckets.hpp"
#include "tessera/train/loss_scaler.hpp"
#include "tessera/train/optimizer_param_schedule.hpp"
#include "tessera/train/precision.hpp"
#include "tessera/train/save_folder.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera {

struct CheckpointMetadata;

struct TrainingOptions {
  std::int64_t micro_batch_size = 4, global_batch_size = 4, train_iters = 10;
  // training.train_samples (Megatron-LM's --train-samples): train_iters = train_samples / global
  // batch, the train split sized for train_samples, the schedule counted in samples. 0: by iterations.
  std::int64_t train_samples = 0;
  BatchRamp ramp;  // training.rampup_batch_size (with train_samples): each iteration's global batch
  std::int64_t eval_interval = 0, eval_iters = 1, log_interval = 1;
  std::string tensorboard_dir;  // [logging] tensorboard_dir: TensorBoard event files there (empty: none)
  std::int64_t tensorboard_log_interval = 1;  // iterations between TensorBoard's per-iteration scalars
  bool log_params_norm = false;  // [logging] log_params_norm: the parameters' L2 norm after each step
  bool log_num_zeros_in_grad = false;  // [logging] log_num_zeros_in_grad: zeros in each step's gradient
  std::uint64_t seed = 1234;
  DataSamplerOptions data_sampler;  // [training] dataloader_type, data_sharding: the training samples' order
  int num_threads = 1;  // CPU threads per rank ([training] num_threads; 0 there = cores / local ranks)
  double clip_grad = 1.0;
  // [training] calculate_per_token_loss (Megatron-Core's --calculate-per-token-loss): the loss and
  // its gradient averaged over the global batch's tokens, not over its microbatches' means.
  bool per_token_loss = false;
  bool overlap_grad_reduce = false;
  std::int64_t bucket_size = kDefaultGradBucketSize;  // elements per data-parallel gradient bucket
  std::string save_dir;         // empty: do not save
  std::int64_t save_interval = 0;  // > 0: a resumable checkpoint every this many iterations (and at the end)
  std::string load_dir;         // empty: start from scratch; else resume from this checkpoint
  // Megatron-LM's --finetune: only the weights of load's checkpoint, training from iteration 1 with
  // a fresh optimizer, scheduler and data order. --no-load-optim: the weights and the iteration, a
  // fresh optimizer (another optimizer plugin or data-parallel size may be used).
  bool finetune = false, no_load_optim = false;
  // Megatron-LM's --no-save-optim: checkpoints without the optimizer files (the weights, the
  // iteration, the schedule), which resume with no_load_optim or finetune.
  bool no_save_optim = false;
  PrecisionOptions precision;   // [training] precision: f32, or bf16/f16 with f32 master weights
  LossScalerOptions loss_scaler;  // fp16's dynamic scaler, or a constant loss_scale
  StopOptions stop;  // graceful stop: signals, exit_interval, exit_duration_in_mins (graceful_stop.hpp)
};

struct TrainingRecord {
  std::vector<double> losses, grad_norms, learning_rates;   // one per iteration (learning rates as logged)
  std::vector<double> params_norms;                         // with logging.log_params_norm, after each step
  std::vector<double> num_zeros_in_grad;  // with logging.log_num_zeros_in_grad: per iteration, −1 where skipped
  std::vector<std::int64_t> batch_sizes;                    // each iteration's global batch (a ramp grows it)
  std::vector<bool> skipped;                                // the loss scaler skipped its step
  std::vector<double> loss_scales;                          // the loss scale it ran with (1: none)
  std::vector<std::pair<std::int64_t, double>> valid_losses;  // (iteration, loss)
  std::optional<double> test_loss;  // the test split's, evaluated after the last iteration (when it has data)
  std::vector<std::vector<double>> loss_parts;  // per iteration, a model with several loss terms (Model::loss_part_names)
  double seconds = 0, tokens = 0, flops = 0;
  std::int64_t peak_bytes = 0;
  // This rank's most microbatches with saved activations at once, and their elements.
  std::int64_t peak_microbatches_held = 0, peak_held_elements = 0;
  // Pipeline bubble: the share of the forward/backward time that stages spent blocked receiving,
  // averaged over the stages (every iteration but the first), and the 1F1B theory (p−1)/(m+p−1).
  double bubble_fraction = 0, bubble_theory = 0;
  // The last iteration trained, and why the run stopped before train_iters (graceful stop: a
  // signal, exit_interval, exit_duration_in_mins); empty when it reached train_iters.
  std::int64_t last_iteration = 0;
  std::string stop_reason;
};

// A Trainer built for `tessera evaluate` (Megatron-LM's eval-only runs): the model, its data and
// layout, but no optimizer, no gradient buckets, no save folder and no resume; the data plugin is
// asked for no training samples and eval_iters global batches of each split named here.
struct EvaluationOnly {
  bool valid = true, test = true;
};

class Trainer {
 public:
  // Builds tokenizer, model, optimizer and data source from the config; rejects unknown keys and
  // checks the model's batch fields against the data plugin's before any file is opened (the data
  // is opened last) or any work is done. Threads per rank: [training] num_threads, or with 0 (the default) the machine's cores
  // divided by the ranks the launcher put on it. The config is taken as it is: checkpoint.use_checkpoint_args
  // and use_mp_args_from_checkpoint_args are the caller's to apply (train/checkpoint_args.hpp), before
  // the app's default plugins, which follow the model and layout they change (tessera train does).
  explicit Trainer(Config config, std::optional<EvaluationOnly> evaluation_only = std::nullopt);
  TrainingRecord train();
  double evaluate(Split split, std::int64_t iterations);
  // evaluate(split, eval_iters), logged as Megatron-LM does (log_validation: " validation loss at
  // <where> | lm loss value: … | lm loss PPL: … |"): the periodic validation of train() and `tessera
  // evaluate` both run this.
  double evaluate_and_log(Split split, const std::string& where);
  // Evaluation only: the weights of a saved model of any layout (final weights or a checkpoint;
  // SavedModel) into this rank's parameters: its tensor-parallel shards, its pipeline stage.
  // Collective over the world: a rank that fails stops all with the error naming the file.
  void load_weights(const SavedModel& saved);

  Model& model() { return *model_; }
  const Optimizer& optimizer() const { return *optimizer_; }
  const DataSource& data() const { return *data_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const TrainingOptions& options() const { return options_; }
  const Parallel& parallel() const { return *parallel_; }
  // Runs one iteration (all microbatches and the update); returns (loss, grad norm).
  std::pair<double, double> train_step(std::int64_t iteration);
  // The learning rate that iteration `iteration`'s update applies. As Megatron-LM's
  // OptimizerParamScheduler, which starts at step 0 and is stepped after optimizer.step() by the
  // samples of that step: the schedule at the samples of the updates taken before this one
  // (iterations skipped by the loss scaler do not advance it), so the first update of a warmup
  // applies rate 0. For iterations not yet trained.
  double learning_rate(std::int64_t iteration) const { return param_schedule_.lr.at(scheduled_samples_before(iteration)); }
  // The embedding's and output layer's rate ([optimizer] decoupled_lr), counted alike; -1 without one.
  double decoupled_learning_rate(std::int64_t iteration) const {
    return param_schedule_.decoupled() ? param_schedule_.decoupled_schedule().at(scheduled_samples_before(iteration))
                                       : -1.0;
  }
  // The weight decay that iteration `iteration`'s update applies, counted as the learning rate.
  double weight_decay(std::int64_t iteration) const {
    return param_schedule_.weight_decay.at(scheduled_samples_before(iteration));
  }
  // The samples the scheduler has counted when iteration `iteration`'s update runs: the updates'
  // taken so far, and those of the iterations in between (if none is skipped).
  std::int64_t scheduled_samples_before(std::int64_t iteration) const;
  const OptimizerParamSchedule& param_schedule() const { return param_schedule_; }
  // The rate logged for iteration `iteration`, once its step is done: as Megatron-LM logs it, the
  // scheduler's rate after stepping, which is the next update's.
  double logged_learning_rate(std::int64_t iteration) const { return learning_rate(iteration + 1); }
  const LossScaler& loss_scaler() const { return scaler_; }
  std::int64_t skipped_iterations() const { return skipped_iterations_; }

 private:
  void save_final() const;
  // Before any work: every rank can write checkpoint.save, rank 0 holds its lock, and what failed
  // saves left there is cleaned up.
  void claim_save_folder();
  void check_backend_features() const;
  void warn_if_memory_short() const;  // world rank 0, CPU runs (train/memory_check.hpp)
  // Resumable checkpoints (docs/checkpoints.md): <save>/iter_XXXXXXX/ written by every rank, renamed
  // into place after a barrier; and the resume from [checkpoint] load (same layout only).
  void save_checkpoint(std::int64_t iteration) const;
  // Expert parallelism: `tensors` (`expert` flags an expert's) followed by the other ranks' experts
  // on rank 0 of the expert-parallel group ({} on its other ranks) — with expert tensor parallel
  // size 1 also those of the other tp ranks, on every tp rank (`every_tp_rank`: each writes a model
  // file) or on tp rank 0. Collective over the ep group, and then over tp; without ep, `tensors`.
  NamedTensors with_all_experts(NamedTensors tensors, std::vector<bool> expert, bool every_tp_rank) const;
  void load_checkpoint();
  void adopt_checkpoint_schedule(const CheckpointMetadata& meta, const std::filesystem::path& dir);
  // After iteration `it`: why the run stops now (empty: it goes on). The ranks agree (an all-reduce
  // over the world when a signal or the wall time can differ between them).
  std::string stop_reason(std::int64_t it, const StopSignals& signals) const;

  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();  // exit_duration_in_mins
  Config config_;
  bool nothing_to_load_ = false;  // checkpoint.load is checkpoint.save, still empty: a first run
  bool evaluation_only_ = false;  // built for `tessera evaluate`: no optimizer_, no training samples
  std::shared_ptr<const Parallel> parallel_;
  std::unique_ptr<SaveFolderLock> save_lock_;  // world rank 0, while checkpoint.save is set
  TrainingOptions options_;
  OptimizerParamSchedule param_schedule_;  // [optimizer] lr and weight-decay keys, or the checkpoint's
  ScheduleOnResume schedule_on_resume_ = ScheduleOnResume::must_match;
  PluginPtr<Tokenizer> tokenizer_;
  PluginPtr<DataSource> data_;
  std::optional<DataSampler> sampler_;  // which training samples each step reads (training only)
  PluginPtr<Model> model_;
  std::vector<Parameter*> params_;            // every tensor saved with the model, buffers included
  std::vector<Parameter*> trainable_params_;  // those the optimizer, gradients and norms see
  Device device_;  // where parameters, activations and batches live
  std::unique_ptr<GradBuckets> grad_buckets_;  // with dp > 1: every grad is a view into it
  PluginPtr<Optimizer> optimizer_;
  std::string optimizer_plugin_;  // [optimizer] plugin, recorded in checkpoints
  // Its state is the same on every data-parallel rank holding the same experts (plain adam): one
  // optimizer file per set of experts (OptimizerFiles).
  bool optimizer_state_replicated_ = false;
  OptimizerFiles optimizer_files() const;
  PluginPtr<Schedule> schedule_;  // null: gradient accumulation (pp = 1)
  std::int64_t consumed_samples_ = 0;
  LossScaler scaler_;
  // Iterations whose step was skipped (non-finite fp16 gradients): the learning-rate schedule and
  // the optimizer count only the others (Megatron-LM).
  std::int64_t skipped_iterations_ = 0;
  // Samples of the updates taken (Megatron's scheduler num_steps): consumed samples less the
  // skipped iterations'. Iterations trained (or resumed from), and the last one's global batch.
  std::int64_t scheduled_samples_ = 0, iterations_done_ = 0, last_batch_ = 0;
  // Optimizer steps taken before the optimizer's state began (checkpoint.no_load_optim), recorded in checkpoints.
  std::int64_t optimizer_state_offset_ = 0;
  bool last_step_skipped_ = false;
  double last_num_zeros_ = -1;  // of the last step, with log_num_zeros_in_grad (−1: not counted)
  std::vector<double> last_loss_parts_, last_eval_parts_;  // of the last step / evaluation (Model::loss_part_names)
  std::vector<double> last_metrics_;                       // of the last step (Model::metric_names)
  std::int64_t start_iteration_ = 0;  // the checkpoint's iteration when resuming
  std::int64_t reductions_overlapped_ = 0;  // in the last iteration
  double reduce_wait_seconds_ = 0;          // summed over iterations
  double data_seconds_ = 0;                 // reading training samples (make_batch), summed over iterations
  std::int64_t peak_microbatches_held_ = 0, peak_held_elements_ = 0;
  double pipeline_seconds_ = 0, pipeline_seconds_receiving_ = 0;  // summed over iterations after the first
};

}  // namespace tessera
