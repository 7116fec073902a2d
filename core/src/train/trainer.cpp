#include "tessera/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/logging.hpp"
#include "tessera/quote.hpp"
#include "tessera/nn/gather_parameter.hpp"
#include "tessera/ops.hpp"
#include "tessera/plugin.hpp"
#include "tessera/parallel/gather_stages.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/iteration.hpp"
#include "tessera/train/pipeline_executor.hpp"
#include "tessera/train/run_report.hpp"
#include "tessera/train/saved_model.hpp"
#include "tessera/train/memory_check.hpp"
#include "tessera/train/tensorboard_writer.hpp"

namespace tessera {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Ranks of this job on this machine, from the launcher (1 without one): the cores are shared.
int local_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* v = std::getenv(var)) {
      const int n = std::atoi(v);
      if (n >= 1) return n;
    }
  return 1;
}

// Running means of the loss and of each of its terms over a log window.
class WindowMean {
 public:
  void add(double loss, const std::vector<double>& parts) {
    loss_ += loss;
    parts_.resize(parts.size(), 0.0);
    for (std::size_t i = 0; i < parts.size(); ++i) parts_[i] += parts[i];
    ++n_;
  }
  bool empty() const { return n_ == 0; }
  double loss() const { return loss_ / static_cast<double>(n_); }
  std::vector<double> parts() const {
    std::vector<double> out(parts_);
    for (double& p : out) p /= static_cast<double>(n_);
    return out;
  }

 private:
  double loss_ = 0;
  std::vector<double> parts_;
  std::int64_t n_ = 0;
};

// Values with their names, for the log: the model's loss parts (Model::loss_part_names) or its
// training statistics (Model::metric_names).
std::vector<std::pair<std::string, double>> named(const std::vector<std::string>& names,
                                                  const std::vector<double>& values) {
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) out.emplace_back(names[i], values[i]);
  return out;
}

// A microbatch read on the host, on the model's device (one copy per field).
Batch batch_to(const Batch& b, Device device) {
  Batch out;
  for (const std::string& name : b.names()) out.set(name, b.get(name).to(device));
  return out;
}

// [training] device, resolved: a backend that does not load names the key and file.
Device resolve_training_device(const Config& config) {
  ConfigSection t = config.section("training");
  const std::string setting = t.get_string("device", "auto");
  Device d;
  try {
    d = resolve_device(setting);
  } catch (const PluginError& e) {
    throw ConfigError(fmt::format("training.device = {} in {} is not \"cpu\", \"auto\" or a backend that loads here: {}",
                                  plain_or_quoted(setting), t.origin("device"), e.what()));
  }
  // A backend asked for by name that loads but finds no device here (no GPU, no driver).
  if (!d.is_cpu() && backend_of(d).device_count() == 0)
    throw ConfigError(fmt::format("training.device = {} in {}: the {} backend loads but has no device here ({})",
                                  plain_or_quoted(setting), t.origin("device"), backend_of(d).name(),
                                  backend_of(d).unavailable_reason()));
  return d;
}

// [parallel] communicator: "auto" (the device's own when MPI cannot read its memory: NCCL for
// CUDA), "mpi" (MPI for every tensor, staged through host memory), or a communicator plugin's name.
// One process needs none.
std::shared_ptr<const Parallel> use_device_communicator(const Config& config, std::shared_ptr<const Parallel> parallel,
                                                        Device device) {
  ConfigSection p = config.section("parallel");
  const std::string choice = p.get_string("communicator", "auto");
  if (choice != "auto" && choice != "mpi") {
    std::vector<std::string> allowed{"\"auto\"", "\"mpi\""};
    bool found = false;
    for (const PluginInfo& info : available_plugins("communicator")) {
      allowed.push_back(fmt::format("\"{}\"", info.name));
      found = found || info.name == choice;
    }
    if (!found)
      throw ConfigError(fmt::format("parallel.communicator = {} in {} is not one of: {}", plain_or_quoted(choice),
                                    p.origin("communicator"), fmt::join(allowed, ", ")));
  }
  if (choice == "mpi" || parallel->layout.world_size() == 1 || device.is_cpu()) return parallel;
  const Backend& backend = backend_of(device);
  const std::string plugin = choice == "auto" ? backend.communicator_plugin() : choice;
  if (plugin.empty() || (choice == "auto" && backend.mpi_addressable())) return parallel;
  try {
    auto moved = parallel->with_communicator(plugin, device);
    log_info("collectives of {} tensors: communicator plugin '{}'", device.str(), plugin);
    return moved;
  } catch (const PluginError& e) {
    if (choice != "auto")
      throw ConfigError(fmt::format("parallel.communicator = {} in {}: {} (allowed: \"auto\", \"mpi\" or a communicator "
                                    "plugin that loads here)", plain_or_quoted(choice), p.origin("communicator"), e.what()));
    log_warn("the {} backend's communicator plugin '{}' does not load ({}); collectives of {} tensors go through MPI "
             "and host memory", backend.name(), plugin, e.what(), device.str());
    return parallel;
  }
}

std::shared_ptr<const Parallel> read_parallel(const Config& config) {
  const ParallelSizes sizes = read_parallel_sizes(config);
  auto parallel = Parallel::create(sizes);
  log_state().rank = parallel->layout.rank();
  return parallel;
}

TrainingOptions read_training(const Config& config, const ParallelLayout& layout) {
  ConfigSection t = config.section("training");
  TrainingOptions o;
  const BatchSizes batch = read_batch_sizes(config, layout.dp());
  o.micro_batch_size = batch.micro;
  o.global_batch_size = batch.global;
  if (t.has("train_samples")) {
    // Megatron-LM's sample-based training: train_iters = train_samples // global_batch_size.
    if (t.has("train_iters"))
      throw ConfigError(fmt::format("training.train_iters ({}) and training.train_samples ({}) are both set: a run is "
                                    "as long as one or the other (as Megatron-LM's --train-iters and --train-samples)",
                                    t.origin("train_iters"), t.origin("train_samples")));
    o.train_samples = t.get_int("train_samples", 1, o.global_batch_size, INT64_MAX / 2);
    o.train_iters = o.train_samples / o.global_batch_size;
  } else {
    o.train_iters = t.get_int("train_iters", 10, 1, INT64_MAX / 2);
    std::int64_t samples = 0;
    if (__builtin_mul_overflow(o.train_iters, o.global_batch_size, &samples))
      throw ConfigError(fmt::format("training.train_iters ({}) × training.global_batch_size ({}) samples overflow a "
                                    "64-bit count; lower training.train_iters",
                                    o.train_iters, o.global_batch_size));
  }
  // Megatron-LM's --rampup-batch-size (runs by samples only): smaller batches first, so more
  // iterations (its update_train_iters).
  o.ramp = read_batch_ramp(t, o.global_batch_size, o.micro_batch_size * layout.dp(), o.train_samples > 0);
  if (o.ramp.active()) o.train_iters = o.ramp.iterations(o.train_samples);
  o.eval_interval = t.get_int("eval_interval", 0, 0, INT64_MAX / 2);
  o.eval_iters = t.get_int("eval_iters", 1, o.eval_interval > 0 ? 1 : 0, 1 << 20);
  o.seed = static_cast<std::uint64_t>(t.get_int("seed", 1234, 0, 4294967295));  // numpy-compatible shuffles take 32-bit seeds
  std::int64_t threads = t.get_int("num_threads", 0, 0, 4096);
  if (threads == 0) threads = std::max<std::int64_t>(1, std::max(1u, std::thread::hardware_concurrency()) / local_ranks());
  o.num_threads = static_cast<int>(threads);
  o.per_token_loss = t.get_bool("calculate_per_token_loss", false);
  o.data_sampler = read_data_sampler_options(config);

  ConfigSection opt = config.section("optimizer");
  o.clip_grad = opt.get_float("clip_grad", 1.0, 0.0, 1e30);
  o.log_interval = config.section("logging").get_int("log_interval", 1, 1, 1 << 30);
  o.tensorboard_dir = config.section("logging").get_string("tensorboard_dir", "");
  o.tensorboard_log_interval = config.section("logging").get_int("tensorboard_log_interval", 1, 1, 1 << 30);
  o.log_params_norm = config.section("logging").get_bool("log_params_norm", false);
  o.log_num_zeros_in_grad = config.section("logging").get_bool("log_num_zeros_in_grad", false);
  ConfigSection ck = config.section("checkpoint");
  o.save_dir = ck.get_string("save", "");
  o.save_interval = ck.get_int("save_interval", 0, 0, INT64_MAX / 2);
  o.load_dir = ck.get_string("load", "");
  o.finetune = ck.get_bool("finetune", false);
  o.no_load_optim = ck.get_bool("no_load_optim", false);
  o.no_save_optim = ck.get_bool("no_save_optim", false);
  // Applied by the caller before the trainer was made (with_checkpoint_args).
  ck.get_bool("use_checkpoint_args", false);
  ck.get_bool("use_mp_args_from_checkpoint_args", false);
  for (const auto& [key, on] : {std::pair{"finetune", o.finetune}, std::pair{"no_load_optim", o.no_load_optim}})
    if (on && o.load_dir.empty())
      throw ConfigError(fmt::format("checkpoint.{} = true ({}) needs checkpoint.load: the checkpoint whose weights it "
                                    "loads",
                                    key, ck.origin(key)));
  ConfigSection par = config.section("parallel");
  o.overlap_grad_reduce = par.get_bool("overlap_grad_reduce", false);
  o.bucket_size = par.get_int("bucket_size", kDefaultGradBucketSize, 1, std::int64_t{1} << 40);
  o.precision = read_precision(config);
  o.loss_scaler = read_loss_scaler(config, o.precision.compute);
  o.stop = read_stop_options(config);
  return o;
}

}  // namespace

Trainer::Trainer(Config config, std::optional<EvaluationOnly> evaluation_only)
    : config_(std::move(config)),
      evaluation_only_(evaluation_only.has_value()) {
  parallel_ = read_parallel(config_);
  options_ = read_training(config_, parallel_->layout);
  // Evaluation reads no [checkpoint] key (its --load names the weights).
  if (!evaluation_only_ && options_.save_interval > 0 && options_.save_dir.empty())
    throw ConfigError(fmt::format("checkpoint.save_interval ({}) in {} needs checkpoint.save (the folder to write to); "
                                  "a run that saves nothing sets checkpoint.save_interval = 0 too",
                                  options_.save_interval, config_.section("checkpoint").origin("save_interval")));
  if (evaluation_only_ && options_.eval_iters < 1)
    throw ConfigError(fmt::format("training.eval_iters = 0 in {}: evaluating needs at least one global batch",
                                  config_.section("training").origin("eval_iters")));
  ops::set_num_threads(options_.num_threads);
  param_schedule_ = read_optimizer_param_schedule(
      config_, RunLength{options_.train_iters, options_.global_batch_size, options_.train_samples});
  schedule_on_resume_ = read_schedule_on_resume(config_);
  device_ = resolve_training_device(config_);
  parallel_ = use_device_communicator(config_, parallel_, device_);
  use_precision(options_.precision, device_);
  tokenizer_ = build_tokenizer(config_);
  model_ = build_model(config_, tokenizer_->vocab_size(), options_.seed, parallel_, options_.precision.compute);
  model_->collect_parameters(params_);
  trainable_params_ = trainable_parameters(params_);
  if (options_.per_token_loss && !model_->loss_tokens(model_->example_batch(1, tokenizer_->vocab_size(), 0)))
    throw ConfigError(fmt::format("training.calculate_per_token_loss = true ({}): the {} model's loss is not a mean "
                                  "over tokens the trainer can count (GPT's is; BERT's and T5's keep Megatron-LM's "
                                  "per-microbatch mean)",
                                  config_.section("training").origin("calculate_per_token_loss"),
                                  plugin_name(config_.section("model"))));
  // Built (and initialised) on the host, then moved once, as PyTorch's model.to(device).
  move_parameters(params_, device_);
  // Mixed precision: the values stay the f32 masters; forward and backward read bf16/f16 copies.
  make_compute_copies(params_, options_.precision.compute);
  scaler_ = LossScaler(options_.loss_scaler);
  // Before the optimizer sees the parameters: their grads move into the bucket buffer.
  if (parallel_->layout.dp() > 1 && !evaluation_only_)
    grad_buckets_ = std::make_unique<GradBuckets>(trainable_params_, options_.bucket_size, parallel_->layout.tp() > 1,
                                                  parallel_->layout.dp());
  if (!evaluation_only_) {
    optimizer_ = build_optimizer(config_, trainable_params_, OptimizerContext{parallel_, grad_buckets_.get()});
  } else {  // no optimizer: its section's keys are the training run's, not checked here
    ConfigSection opt = config_.section("optimizer");
    for (const std::string& key : opt.keys()) opt.declare(key);
  }
  optimizer_plugin_ = plugin_name(config_.section("optimizer"));
  if (!evaluation_only_) {
    const PluginPtr<OptimizerStateFormat> format = optimizer_state_format(config_, optimizer_plugin_);
    optimizer_state_replicated_ = format && format->replicated_over_dp();
  }
  schedule_ = build_schedule(config_, parallel_->layout);
  // A batch ramp changes the microbatches per iteration: each count must suit the schedule now,
  // not hours into the run.
  if (schedule_ && options_.ramp.active()) {
    const ParallelLayout& l = parallel_->layout;
    for (std::int64_t b = options_.ramp.start; b <= options_.ramp.global; b += options_.ramp.increment) {
      try {
        schedule_->training_steps(
            ScheduleSpec{l.pp(), l.pp_rank(), b / (options_.micro_batch_size * l.dp()), l.vpp()});
      } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("training.rampup_batch_size: its global batch of {} does not suit the pipeline "
                                      "schedule: {}",
                                      b, e.what()));
      }
    }
  }

  DataRequest request;
  request.seq_length = model_->seq_length();
  request.decoder_seq_length = model_->decoder_seq_length();
  request.tokenizer = tokenizer_.get();
  request.model_fields = model_->batch_fields();
  request.seed = options_.seed;
  request.eod_token = tokenizer_->eod();
  request.vocab_size = tokenizer_->vocab_size();
  // As Megatron-LM: enough training samples for every iteration. Megatron asks the validation split
  // for (train_iters / eval_interval + 1) · eval_iters global batches and the test split for eval_iters;
  // the counts shape their indices (epochs, shuffles), so asking the same makes the same samples.
  // Every evaluation reads the first eval_iters batches (the same ones, so values compare; Megatron's
  // evaluations read on), which are Megatron's first evaluation's. `tessera evaluate` asks the same
  // counts, so it reads what training read.
  const std::int64_t eval_samples = options_.eval_iters * options_.global_batch_size;
  // As Megatron-LM, a run by samples asks for train_samples, not whole batches (read_training checked
  // that train_iters × global batch fits).
  request.num_samples[0] =
      options_.train_samples > 0 ? options_.train_samples : options_.train_iters * options_.global_batch_size;
  // Megatron's iteration count lets a ramp's last batch end past train_samples (its sampler would
  // then run dry on a blend of exactly train_samples): ask for what the iterations read.
  if (options_.ramp.active())
    request.num_samples[0] = std::max(request.num_samples[0], options_.ramp.consumed_after(options_.train_iters));
  const std::int64_t windows = options_.eval_interval > 0 ? options_.train_iters / options_.eval_interval + 1 : 1;
  std::int64_t valid_samples = 0;
  if (__builtin_mul_overflow(windows, eval_samples, &valid_samples))
    throw ConfigError(fmt::format("validation asks (training.train_iters / training.eval_interval + 1) = {} × "
                                  "training.eval_iters ({}) × training.global_batch_size ({}) samples, which overflow a "
                                  "64-bit count; raise training.eval_interval or lower training.eval_iters",
                                  windows, options_.eval_iters, options_.global_batch_size));
  // Evaluation only: no training samples; the splits asked for, eval_iters global batches evaluated.
  const bool validates = evaluation_only_ ? evaluation_only->valid : options_.eval_interval > 0;
  if (evaluation_only_) request.num_samples[0] = 0;
  request.num_samples[1] = validates ? valid_samples : 0;
  // The test split: eval_iters global batches, evaluated once at the end of training as Megatron-LM
  // does ("iteration N on test set"), where the split has documents; `tessera evaluate --split test`
  // asks for it outright.
  request.num_samples[2] = (evaluation_only_ ? evaluation_only->test : validates) ? eval_samples : 0;
  request.test_split_optional = !evaluation_only_;
  // The data plugin reads and checks its keys here but opens no file yet.
  data_ = build_data(config_, request);
  // Everything that reads the config has run: any key nobody read is a typo, reported before any
  // file is opened and before the save folder is touched.
  config_.check_no_unknown_keys();
  check_backend_features();
  if (device_.is_cpu() && !evaluation_only_ && parallel_->layout.rank() == 0) warn_if_memory_short();
  check_batch_fields(model_->batch_fields(), plugin_label(model_), data_->fields(), plugin_label(data_));
  if (!options_.save_dir.empty() && !evaluation_only_) claim_save_folder();
  call_plugin(data_, [](DataSource& d) { d.open(); });  // its errors tagged like the factory's
  if (!evaluation_only_)
    sampler_.emplace(options_.data_sampler, data_->split(Split::train).size(), options_.micro_batch_size,
                     parallel_->layout.dp());
  if (!options_.load_dir.empty() && !evaluation_only_ && !nothing_to_load_)
    run_on_all_or_throw(*parallel_->groups.world, "loading checkpoint.load = " + options_.load_dir,
                        [&] { load_checkpoint(); });
  refresh_compute_copies(params_);  // from the loaded master weights

  log_info("config {}:\n{}", config_.source(), config_.dump());
  log_info("{}", model_->describe());
  if (sampler_ && options_.data_sampler.cyclic) log_info("data order (training.dataloader_type): {}", sampler_->describe());
  log_info("parameters: {} ({:.2f} M)", count_elements(trainable_params_), count_elements(trainable_params_) / 1e6);
  if (optimizer_) {
    log_info("optimizer: {}", optimizer_->describe());
    log_info("optimizer state: {} elements on this rank", optimizer_->state_elements());
    log_info("optimizer schedule: {}", param_schedule_.describe());
    if (options_.ramp.active())
      log_info("batch ramp (training.rampup_batch_size): global batch {} growing by {} to {} over the first {} "
               "samples; {} iterations for training.train_samples = {}",
               options_.ramp.start, options_.ramp.increment, options_.ramp.global, options_.ramp.samples,
               options_.train_iters, options_.train_samples);
  }
  log_info("schedule: {}", schedule_ ? schedule_->describe() : "gradient accumulation (pp = 1)");
  log_info("data: {}", data_->describe());
  log_info("layout: {}; threads per rank: {}; device: {}", parallel_->layout.str(), ops::num_threads(), device_.str());
  if (options_.precision.tf32) log_info("precision: tf32: f32 tensors, f32 matmuls on TF32 tensor cores");
  if (options_.precision.compute != DType::f32)
    log_info("precision: {} activations and weight copies; f32 master weights, gradients and optimizer state{}",
             precision_name(options_.precision),
             !scaler_.active()             ? ""
             : scaler_.dynamic()           ? fmt::format("; dynamic loss scale from {}", scaler_.scale())
                                           : fmt::format("; constant loss scale {}", scaler_.scale()));
  if (grad_buckets_)
    log_info("data parallel: gradients in {} bucket(s) of up to {} elements (parallel.bucket_size), {} {}",
             grad_buckets_->size(), options_.bucket_size,
             optimizer_->gradient_shards() ? "reduce-scatter into the optimizer's shards" : "all-reduce",
             options_.overlap_grad_reduce ? "started per bucket during backward (parallel.overlap_grad_reduce)"
                                          : "after backward");
}

std::pair<double, double> Trainer::train_step(std::int64_t iteration) {
  const std::int64_t micro = options_.micro_batch_size;
  const Dataset& train = data_->split(Split::train);
  const FieldSpecs fields = data_->fields();
  const std::int64_t dp = parallel_->layout.dp(), dp_rank = parallel_->layout.dp_rank();
  IterationSettings s;
  s.iteration = iteration;
  const std::int64_t batch = options_.ramp.batch_at(consumed_samples_);  // the global batch, or the ramp's
  s.num_microbatches = batch / (micro * dp);
  s.micro_batch_size = micro;
  s.lr = learning_rate(iteration);
  s.decoupled_lr = decoupled_learning_rate(iteration);
  s.weight_decay = weight_decay(iteration);
  s.loss_scale = scaler_.scale();
  s.skip_nonfinite = scaler_.skips_nonfinite();
  s.clip_grad = options_.clip_grad;
  s.seed = options_.seed;
  s.overlap_grad_reduce = options_.overlap_grad_reduce;
  s.count_zeros_in_grad = options_.log_num_zeros_in_grad;
  s.per_token_loss = options_.per_token_loss;
  const std::int64_t first = consumed_samples_;
  // As Megatron-LM's samplers (train/data_sampler.hpp): step m's microbatches follow the samples of
  // the m earlier micro·dp blocks.
  IterationResult r = run_iteration(
      *model_, trainable_params_, *optimizer_,
      [&](std::int64_t m) {
        const auto t0 = Clock::now();  // the data loader's share of the step, logged at the end
        Batch b = make_batch(train, fields, sampler_->microbatch(first + m * micro * dp, dp_rank));
        data_seconds_ += seconds_since(t0);
        return batch_to(std::move(b), device_);
      },
      s, *parallel_,
      schedule_.get(), grad_buckets_.get());
  consumed_samples_ += batch;  // read, even when the step is skipped
  if (!r.skipped) scheduled_samples_ += batch;
  iterations_done_ = iteration;
  last_batch_ = batch;
  scaler_.update(r.skipped);
  last_step_skipped_ = r.skipped;
  last_num_zeros_ = r.num_zeros_in_grad;
  last_loss_parts_ = r.loss_parts;
  last_metrics_ = r.metrics;
  if (r.skipped) ++skipped_iterations_;
  reductions_overlapped_ = r.reductions_overlapped;
  peak_microbatches_held_ = std::max(peak_microbatches_held_, r.peak_microbatches_held);
  peak_held_elements_ = std::max(peak_held_elements_, r.peak_held_elements);
  if (iteration > start_iteration_ + 1) {  // the first iteration pays one-time costs (page faults, MPI connections)
    pipeline_seconds_ += r.pipeline_seconds;
    pipeline_seconds_receiving_ += r.pipeline_seconds_receiving;
  }
  reduce_wait_seconds_ += r.reduce_wait_seconds;
  return {r.loss, r.grad_norm};
}

std::int64_t Trainer::scheduled_samples_before(std::int64_t iteration) const {
  std::int64_t samples = scheduled_samples_, consumed = consumed_samples_;
  if (!options_.ramp.active()) return samples + (iteration - 1 - iterations_done_) * options_.global_batch_size;
  for (std::int64_t it = iterations_done_ + 1; it < iteration; ++it) {
    const std::int64_t b = options_.ramp.batch_at(consumed);
    samples += b;
    consumed += b;
  }
  return samples;
}

double Trainer::evaluate(Split split, std::int64_t iterations) {
  const Dataset& ds = data_->split(split);
  const FieldSpecs fields = data_->fields();
  const std::int64_t micro = options_.micro_batch_size;
  const std::int64_t batches = iterations * (options_.global_batch_size / micro);
  if (batches == 0 || ds.size() < batches * micro)
    throw Error(fmt::format("evaluation needs {} {} samples, the {} split has {}", batches * micro, split_name(split),
                            split_name(split), ds.size()));
  // Batch i is evaluated by dp rank i % dp; the sum over ranks is the single-process sum. The
  // batches flow through the pipeline stages forward only; the last stage has the losses.
  const std::int64_t dp = parallel_->layout.dp(), dp_rank = parallel_->layout.dp_rank();
  const ScheduleSpec spec{parallel_->layout.pp(), parallel_->layout.pp_rank(), (batches - dp_rank + dp - 1) / dp,
                          parallel_->layout.vpp()};
  PipelinePass pass;
  pass.training = false;
  pass.micro_batch_size = micro;
  pass.device = device_;
  const auto batch = [&](std::int64_t k) {
    return batch_to(make_batch(ds, fields, (dp_rank + k * dp) * micro, micro), device_);
  };
  // calculate_per_token_loss: the validation loss is the mean over its tokens too.
  std::vector<Batch> counted;
  if (options_.per_token_loss)
    pass.microbatch_weights = per_token_weights(*model_, batch, spec.num_microbatches, batches, *parallel_, counted);
  const PipelineRun run = run_pipeline_steps(
      *model_, forward_only_steps(spec),
      [&](std::int64_t k) { return counted.empty() ? batch(k) : counted.at(static_cast<std::size_t>(k)); }, pass,
      *parallel_);
  const double total = all_reduce_sum(*parallel_->groups.dp, all_reduce_sum(*parallel_->groups.pp, run.loss_sum));
  last_eval_parts_ = mean_loss_parts(*parallel_, run.loss_part_sums, model_->loss_part_names().size(),
                                     static_cast<double>(batches));
  return total / static_cast<double>(batches);
}

double Trainer::evaluate_and_log(Split split, const std::string& where) {
  const double loss = evaluate(split, options_.eval_iters);
  log_validation(where, loss, named(model_->loss_part_names(), last_eval_parts_));
  return loss;
}

void Trainer::load_weights(const SavedModel& saved) {
  const ParallelLayout& layout = parallel_->layout;
  std::vector<std::string> padding_zeroed;
  run_on_all_or_throw(*parallel_->groups.world, "loading " + saved.describe(), [&] {
    padding_zeroed = load_saved_weights(
        saved, params_, SavedWeightsTarget{layout.tp_rank(), layout.tp(), layout.pp() == 1, true, layout.ep()});
  });
  refresh_compute_copies(params_);
  log_info("loaded the weights of {}", saved.describe());
  // The loss's softmax runs over the padded vocabulary (as Megatron-LM's): rows the files lack change it.
  if (!padding_zeroed.empty())
    log_warn("{} holds no vocabulary padding rows of this layout for {} ({}): they are zero here, so the losses can "
             "differ from those training logged; a checkpoint iter_XXXXXXX of a layout with the same padded "
             "vocabulary (model.make_vocab_size_divisible_by × tensor_model_parallel_size) gives them exactly",
             saved.describe(), fmt::join(padding_zeroed, ", "),
             saved.checkpoint ? "its layout pads the vocabulary to another size" : "final weights hold none");
}

TrainingRecord Trainer::train() {
  if (evaluation_only_) throw Error("this Trainer was built for evaluation only (EvaluationOnly): it cannot train");
  TrainingRecord rec;
  rec.last_iteration = start_iteration_;
  reset_peak_memory(device_);
  // Tokens and model FLOPs of an iteration of `batch` sequences (a batch ramp changes it).
  const auto tokens_of = [&](std::int64_t batch) { return static_cast<double>(batch * model_->seq_length()); };
  const auto flops_of = [&](std::int64_t batch) { return model_->flops_per_iteration(batch); };
  const auto start = Clock::now();
  double window_seconds = 0, train_seconds = 0;  // train_seconds: the steps only (no evaluation, no saving)
  double window_tokens = 0, window_flops = 0;
  std::int64_t window_iters = 0, window_skipped = 0;
  // As Megatron-LM's training_log: a line's losses are the means over its window's iterations whose
  // step was taken (the loss scaler's skipped ones left out); the grad norm is the line's iteration's.
  WindowMean window_loss, window_metrics;  // the line's means (window_metrics: its parts only)
  std::int64_t iterations = options_.train_iters - start_iteration_;  // in this run
  // Graceful stop: from here on SIGTERM/SIGINT (and exit_signal) are a request, looked at between
  // iterations; before, they end the process as usual (nothing is trained yet).
  const StopSignals signals(options_.stop.signals());
  // [logging] tensorboard_dir: world rank 0 writes the event file (it prints the lines too).
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (!options_.tensorboard_dir.empty())
    run_on_all_or_throw(*parallel_->groups.world, "opening logging.tensorboard_dir = " + options_.tensorboard_dir, [&] {
      if (parallel_->layout.rank() == 0) tensorboard = std::make_unique<TensorBoardWriter>(options_.tensorboard_dir);
    });
  for (std::int64_t it = start_iteration_ + 1; it <= options_.train_iters; ++it) {
    const auto t0 = Clock::now();
    const double scale = scaler_.scale();
    auto [loss, norm] = train_step(it);
    const double lr = logged_learning_rate(it);  // after the step: a skipped step leaves it where it was
    const double step_seconds = seconds_since(t0);
    const double tokens = tokens_of(last_batch_), flops = flops_of(last_batch_);
    window_seconds += step_seconds;
    train_seconds += step_seconds;
    window_tokens += tokens;
    window_flops += flops;
    rec.tokens += tokens;
    rec.flops += flops;
    rec.batch_sizes.push_back(last_batch_);
    ++window_iters;
    window_skipped += last_step_skipped_ ? 1 : 0;
    if (!last_step_skipped_) {
      window_loss.add(loss, last_loss_parts_);
      window_metrics.add(0.0, last_metrics_);
    }
    rec.losses.push_back(loss);
    rec.grad_norms.push_back(norm);
    rec.learning_rates.push_back(lr);
    // Megatron-LM's --log-params-norm: the norm of the weights this step left (a collective).
    const double params_norm = options_.log_params_norm ? global_params_norm(trainable_params_, *optimizer_, *parallel_) : -1.0;
    if (options_.log_params_norm) rec.params_norms.push_back(params_norm);
    if (options_.log_num_zeros_in_grad) rec.num_zeros_in_grad.push_back(last_num_zeros_);
    rec.skipped.push_back(last_step_skipped_);
    rec.loss_scales.push_back(scale);
    if (!last_loss_parts_.empty()) rec.loss_parts.push_back(last_loss_parts_);
    // TensorBoard as Megatron-LM's training_log: each tensorboard_log_interval-th iteration's own
    // values (the printed line's losses are window means; iteration-time comes with the line).
    if (tensorboard && it % options_.tensorboard_log_interval == 0) {
      IterationLine own{it, options_.train_iters, consumed_samples_, last_batch_, 0.0, lr, loss, norm,
                        tokens, flops, 0.0, 0, named(model_->loss_part_names(), last_loss_parts_)};
      if (scaler_.active()) own.loss_scale = scale;
      own.params_norm = params_norm;
      own.num_zeros_in_grad = last_num_zeros_;
      own.decoupled_lr = decoupled_learning_rate(it + 1);
      own.metrics = named(model_->metric_names(), last_metrics_);
      write_iteration(*tensorboard, own);
    }
    // Graceful stop (graceful_stop.hpp), decided before the line so that the last iteration is logged.
    rec.stop_reason = it < options_.train_iters ? stop_reason(it, signals) : std::string();
    if (it % options_.log_interval == 0 || it == options_.train_iters || !rec.stop_reason.empty()) {
      // A window of skipped steps only (fp16 overflows) shows this iteration's losses.
      if (window_loss.empty()) {
        window_loss.add(loss, last_loss_parts_);
        window_metrics.add(0.0, last_metrics_);
      }
      const double n = static_cast<double>(window_iters);
      IterationLine line{it, options_.train_iters, consumed_samples_, last_batch_,
                         1000.0 * window_seconds / n, lr, window_loss.loss(), norm,
                         window_tokens / n, window_flops / n, 0.0, 0, named(model_->loss_part_names(), window_loss.parts())};
      line.metrics = named(model_->metric_names(), window_metrics.parts());
      window_tokens = window_flops = 0;
      window_loss = {};
      window_metrics = {};
      line.params_norm = params_norm;
      line.num_zeros_in_grad = last_num_zeros_;
      line.decoupled_lr = decoupled_learning_rate(it + 1);  // as the rate: the scheduler's after this step
      if (scaler_.active()) {
        line.loss_scale = scale;
        line.skipped_iterations = window_skipped;
      }
      log_iteration(line);
      if (tensorboard) write_iteration_time(*tensorboard, it, line.ms_per_iteration);
      window_seconds = 0;
      window_iters = window_skipped = 0;
    }
    if (options_.eval_interval > 0 && (it % options_.eval_interval == 0 || it == options_.train_iters))
      rec.valid_losses.emplace_back(it, evaluate_and_log(Split::valid, fmt::format("iteration {}", it)));
    const bool saved = options_.save_interval > 0 && (it % options_.save_interval == 0 || it == options_.train_iters);
    if (saved) {
      optimizer_->gather_master_weights();  // a sharded optimizer's f32 masters, whole before saving
      save_checkpoint(it);
    }
    if (tensorboard && !rec.valid_losses.empty() && rec.valid_losses.back().first == it)
      write_validation(*tensorboard, it, consumed_samples_, rec.valid_losses.back().second,
                       named(model_->loss_part_names(), last_eval_parts_));
    rec.last_iteration = it;
    if (rec.stop_reason.empty()) continue;
    // As Megatron-LM's checkpoint_and_decide_exit: a resumable checkpoint of this iteration, then out.
    if (options_.save_dir.empty()) {
      log_warn("stopping at iteration {} ({}) without a checkpoint: checkpoint.save is not set, so iterations {}-{} "
               "are lost", it, rec.stop_reason, start_iteration_ + 1, it);
    } else if (!saved) {
      optimizer_->gather_master_weights();
      save_checkpoint(it);
    }
    log_info("exiting program at iteration {}: {}", it, rec.stop_reason);
    iterations = it - start_iteration_;
    break;
  }
  rec.seconds = seconds_since(start);
  rec.peak_bytes = memory_stats(device_).peak_bytes;
  rec.peak_microbatches_held = peak_microbatches_held_;
  rec.peak_held_elements = peak_held_elements_;
  const ParallelLayout& layout = parallel_->layout;
  RunFacts facts;
  facts.iterations = iterations;
  facts.dp = layout.dp();
  facts.pp = layout.pp();
  facts.vpp = layout.vpp();
  facts.pp_rank = layout.pp_rank();
  facts.microbatches = static_cast<double>(options_.global_batch_size / (options_.micro_batch_size * layout.dp()));
  if (grad_buckets_) {
    facts.reductions_overlapped = reductions_overlapped_;
    facts.buckets = static_cast<std::int64_t>(grad_buckets_->size());
    facts.bucket_size = options_.bucket_size;
    facts.overlap_grad_reduce = options_.overlap_grad_reduce;
    facts.reduce_wait_seconds = reduce_wait_seconds_;
  }
  if (layout.pp() > 1) {
    Communicator& pp = *parallel_->groups.pp;
    const double waited = all_reduce_sum(pp, pipeline_seconds_receiving_), total = all_reduce_sum(pp, pipeline_seconds_);
    rec.bubble_fraction = total > 0 ? waited / total : 0.0;
    // Idle over total time: 1F1B (p−1)/(m+p−1); interleaving divides the idle part by v.
    rec.bubble_theory = (layout.pp() - 1.0) / (layout.vpp() * facts.microbatches + layout.pp() - 1.0);
  }
  // As Megatron-LM's pretrain(): the test split once, after the last iteration (not on a stop).
  if (rec.stop_reason.empty() && iterations > 0 && options_.eval_interval > 0 && data_->split(Split::test).size() > 0)
    rec.test_loss = evaluate_and_log(Split::test, fmt::format("iteration {} on test set", options_.train_iters));
  log_run_summary(rec, facts);
  if (iterations > 0 && train_seconds > 0)
    log_info("data loader: {:.3f} ms per iteration reading training samples, {:.2f}% of the training steps' time",
             1000.0 * data_seconds_ / static_cast<double>(iterations), 100.0 * data_seconds_ / train_seconds);
  // A stopped run is not finished: its checkpoint is what resumes it; final weights come at the end.
  if (!options_.save_dir.empty() && rec.stop_reason.empty()) {
    if (options_.save_interval == 0) optimizer_->gather_master_weights();  // else the last checkpoint did
    save_final();
  }
  return rec;
}

std::string Trainer::stop_reason(std::int64_t it, const StopSignals& signals) const {
  const StopOptions& o = options_.stop;
  // Each rank's own view: a signal it received, its wall time past the limit. They can differ, so
  // the world agrees on the largest (any rank's signal stops all); a run that watches neither pays
  // no collective. Every rank calls this after every iteration, so the all-reduces pair up.
  const double minutes = std::chrono::duration<double>(Clock::now() - created_).count() / 60.0;
  Tensor flags = Tensor::from<float>({2}, {static_cast<float>(signals.received()),
                                           o.exit_duration_in_mins > 0 && minutes > o.exit_duration_in_mins ? 1.0f : 0.0f});
  Communicator& world = *parallel_->groups.world;
  if (world.size() > 1 && (!o.signals().empty() || o.exit_duration_in_mins > 0)) world.all_reduce(flags, ReduceOp::max);
  const std::vector<float> v = flags.to_vector<float>();
  if (v[0] > 0) {
    const int sig = static_cast<int>(v[0]);
    return signals.received() == sig ? fmt::format("{} received (training.exit_signal_handler)", signal_name(sig))
                                     : fmt::format("{} received by another rank (training.exit_signal_handler)",
                                                   signal_name(sig));
  }
  if (v[1] > 0)
    return fmt::format("the run is older than training.exit_duration_in_mins = {} ({:.2f} minutes)",
                       o.exit_duration_in_mins, minutes);
  if (o.exit_interval > 0 && it % o.exit_interval == 0)
    return fmt::format("training.exit_interval = {}", o.exit_interval);
  return {};
}

// What the model asks of the device that its backend may lack, found before any file is opened (read
// after check_no_unknown_keys: the model plugin has read these keys, or they are not its).
void Trainer::check_backend_features() const {
  if (device_.is_cpu()) return;
  ConfigSection m = config_.section("model");
  const FieldSpecs fields = data_->fields();
  const bool document_masks = std::any_of(fields.begin(), fields.end(),
                                          [](const FieldSpec& f) { return f.name == "document_start"; });
  // Evaluation drops nothing, but document masks apply to it too.
  if (!evaluation_only_ && m.has("attention_dropout") && m.get_float("attention_dropout", 0.0, 0.0, 1.0) > 0.0 &&
      !backend_of(device_).supports_attention_dropout())
    throw ConfigError(fmt::format(
        "model.attention_dropout = {} in {}: the {} backend (training.device = {}) has no attention kernel with "
        "dropout yet; set model.attention_dropout = 0, or train on the CPU (docs/cuda.md)",
        m.get_float("attention_dropout", 0.0, 0.0, 1.0), m.origin("attention_dropout"), backend_of(device_).name(),
        device_.str()));
  if (m.has("window_size") && !backend_of(device_).supports_attention_window())
    throw ConfigError(fmt::format("model.window_size in {}: the {} backend (training.device = {}) has no attention "
                                  "kernel with a sliding window yet; train on the CPU (docs/cuda.md)",
                                  m.origin("window_size"), backend_of(device_).name(), device_.str()));
  if (m.has("softmax_type") && m.get_string("softmax_type", "vanilla") != "vanilla" &&
      !backend_of(device_).supports_attention_sink())
    throw ConfigError(fmt::format("model.softmax_type = \"{}\" in {}: the {} backend (training.device = {}) has no "
                                  "attention kernel with sinks yet; set it to \"vanilla\", or train on the CPU "
                                  "(docs/cuda.md)",
                                  m.get_string("softmax_type", "vanilla"), m.origin("softmax_type"),
                                  backend_of(device_).name(), device_.str()));
  if (parallel_->layout.cp() > 1 && !backend_of(device_).supports_attention_query_position())
    throw ConfigError(fmt::format("parallel.context_parallel_size = {} in {}: the {} backend (training.device = {}) has "
                                  "no attention kernel for a rank's queries against the whole sequences' keys yet; "
                                  "set it to 1, or train on the CPU (docs/cuda.md)",
                                  parallel_->layout.cp(), config_.section("parallel").origin("context_parallel_size"),
                                  backend_of(device_).name(), device_.str()));
  if (document_masks && !backend_of(device_).supports_attention_first_key())
    throw ConfigError(fmt::format(
        "data.reset_attention_mask in {}: the {} backend (training.device = {}) has no attention kernel with "
        "per-document masks yet; set data.reset_attention_mask = false, or train on the CPU (docs/cuda.md)",
        config_.section("data").origin("reset_attention_mask"), backend_of(device_).name(), device_.str()));
}

void Trainer::warn_if_memory_short() const {
  const std::optional<std::int64_t> available = available_host_memory();
  if (!available) return;
  try {
    const Plan plan = make_plan(config_, PlanRequest{parallel_->layout.world_size(), tokenizer_->vocab_size()});
    const std::string warning = memory_warning(plan, local_ranks(), *available);
    if (!warning.empty()) log_warn("{}", warning);
  } catch (const std::exception&) {
    // A model plugin without a plan (kind model_plan): nothing to count.
  }
}

void Trainer::claim_save_folder() {
  Communicator& world = *parallel_->groups.world;
  const std::string origin = config_.section("checkpoint").origin("save");
  const std::string what = "checking checkpoint.save = " + options_.save_dir;
  // Every rank writes checkpoint files, so every rank proves it can before any work is done.
  run_on_all_or_throw(world, what, [&] { probe_writable(options_.save_dir, world.rank(), origin); });
  run_on_all_or_throw(world, what, [&] {
    if (world.rank() != 0) return;
    save_lock_ = std::make_unique<SaveFolderLock>(options_.save_dir);
    clean_unfinished_saves(options_.save_dir);
    // Nothing already saved is lost: a run that does not resume from this folder (or one of its
    // checkpoints) must not save over another run's checkpoints and final weights.
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto folder = [&](const std::string& p) {  // absolute, and "runs/x/" is "runs/x"
      fs::path f = fs::weakly_canonical(p, ec);
      return f.has_filename() ? f : f.parent_path();
    };
    const fs::path save = folder(options_.save_dir);
    const fs::path load = options_.load_dir.empty() ? fs::path() : folder(options_.load_dir);
    const bool resumes_here = !load.empty() && (load == save || load.parent_path() == save);
    // A fine-tuning run starts again at iteration 1: in its source's folder it would save over it.
    if (options_.finetune && resumes_here)
      throw ConfigError(fmt::format("checkpoint.finetune = true ({}) starts a new run from the weights of "
                                    "checkpoint.load = {}, which is in checkpoint.save = {} ({}): it would save its "
                                    "iterations over that run's. Save the fine-tuned run to another folder",
                                    config_.section("checkpoint").origin("finetune"), options_.load_dir,
                                    options_.save_dir, origin));
    const std::string previous = previous_run_in(options_.save_dir);
    const std::string load_origin = config_.section("checkpoint").origin("load");
    // load = save is Megatron-LM's launch script (--save $CKPT --load $CKPT): its first run finds
    // nothing there and starts from scratch, the same command later resumes.
    nothing_to_load_ = !load.empty() && load == save && previous.empty();
    if (load == save && !previous.empty() && !fs::exists(save / kLatestCheckpointFile, ec))
      throw ConfigError(fmt::format(
          "checkpoint.load = checkpoint.save = {} ({}) holds a run's {} but no resumable checkpoint (no {}; a run saved "
          "with checkpoint.save_interval = 0): this run would train from those weights again from iteration 1 and save over "
          "them. To fine-tune from them save to another folder (--set checkpoint.save=…); to start again, move them "
          "away",
          options_.save_dir, load_origin, previous, kLatestCheckpointFile));
    // A config's load = save with only save overridden (or the reverse): say which folder is read.
    if (!load.empty() && load != save && load_origin != origin)
      log_warn("checkpoint.load = {} ({}) is not checkpoint.save = {} ({}): this run starts from {}; --set "
               "checkpoint.load=\"\" starts from scratch instead",
               options_.load_dir, load_origin, options_.save_dir, origin, options_.load_dir);
    if (!resumes_here && !previous.empty())
      throw ConfigError(fmt::format(
          "checkpoint.save = {} ({}) already holds a run's {}; this run {} and would save over them. Resume that run "
          "with checkpoint.load = {} (--set checkpoint.load={}), save to another folder, or move them away first",
          options_.save_dir, origin, previous,
          options_.load_dir.empty() ? "starts from scratch" : "resumes from checkpoint.load = " + options_.load_dir,
          options_.save_dir, options_.save_dir));
  });
  Tensor flag = Tensor::from<float>({1}, {nothing_to_load_ ? 1.0f : 0.0f});
  world.broadcast(flag, 0);
  nothing_to_load_ = flag.to_vector<float>()[0] > 0;
  if (nothing_to_load_)
    log_info("checkpoint.load = {} is checkpoint.save and holds no checkpoint yet: training starts from scratch (the "
             "same command run again resumes from it)",
             options_.load_dir);
}

void Trainer::save_final() const {
  // The full tensors, whatever the layout: tensor-parallel shards are gathered (a collective over
  // tp, so every rank takes part) and the vocabulary padding dropped; the pipeline stages' tensors
  // (each once: the LM head's copy of the embedding stays behind) are collected on the first
  // stage; data-parallel replicas are identical, so world rank 0 writes.
  NamedTensors tensors;
  std::vector<bool> expert;
  for (const Parameter* p : params_) {
    Tensor full = gather_saved_tensor(*p, p->value, parallel_->groups.tp);
    if (p->stage_tie == Parameter::StageTie::copy) continue;
    tensors.emplace_back(p->name, full);
    expert.push_back(p->expert_parallel);
  }
  const ParallelLayout& layout = parallel_->layout;
  if (layout.expert_dp_rank() != 0) return;
  // Expert parallelism: data-parallel rank 0 (tp rank 0 of it) collects every expert. Other tp ranks
  // take part only when they hold other experts (expert tensor parallel size 1).
  if (layout.tp_rank() == 0 || layout.expert_tp_slices() > 1)
    tensors = with_all_experts(std::move(tensors), std::move(expert), /*every_tp_rank=*/false);
  if (layout.tp_rank() != 0 || layout.dp_rank() != 0 || layout.cp_rank() != 0) return;
  tensors = gather_to_first_rank(tensors, *parallel_->groups.pp);
  if (layout.rank() != 0) return;
  std::filesystem::create_directories(options_.save_dir);
  const std::filesystem::path dir(options_.save_dir);
  save_safetensors(dir / "model.safetensors", tensors, {{"format", "tessera"}, {"model", model_->describe()}});
  write_file_atomically(dir / "config.toml", config_for_saved_folder(config_, *tokenizer_, dir));
  log_info("saved final weights to {} (model.safetensors, config.toml, tokenizer files)", dir.string());
}

}  // namespace tessera
