// Megatron-LM's OptimizerParamScheduler: the learning rate (linear warmup from lr_warmup_init to lr,
// then constant, linear, cosine, inverse-square-root or WSD decay to min_lr) and the weight decay
// (constant, or a linear or cosine increment from start_weight_decay to end_weight_decay over the
// run). Both count samples, as Megatron's do: a warmup given as a fraction of the decay may end
// between two iterations, and inverse-square-root without warmup divides by √(samples seen).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

class Config;

struct LrSchedule {
  double lr = 1e-4, min_lr = 0.0, init_lr = 0.0;  // peak, floor, start of the warmup (lr_warmup_init)
  // lr_warmup_iters × batch, or lr_warmup_fraction × decay_samples (a fraction need not give whole samples).
  double warmup_samples = 0;
  std::int64_t decay_samples = 1;  // lr_decay_iters × batch, or lr_decay_samples
  std::string style = "cosine";    // constant | linear | cosine | inverse-square-root | WSD
  // WSD: the rate stays at lr until the last wsd_decay_samples of the decay, then anneals in wsd_style.
  std::int64_t wsd_decay_samples = 0;
  std::string wsd_style = "exponential";  // exponential | linear | cosine | minus_sqrt

  // Megatron's get_lr() at num_steps = samples.
  double at(std::int64_t samples) const;
};

struct WeightDecaySchedule {
  double start = 0.01, end = 0.01;
  std::int64_t incr_samples = 1;   // train_iters × batch, or train_samples
  std::string style = "constant";  // constant (start = end) | linear | cosine

  // Megatron's get_wd() at num_steps = samples.
  double at(std::int64_t samples) const;
};

struct OptimizerParamSchedule {
  LrSchedule lr;
  WeightDecaySchedule weight_decay;
  // Megatron-Core's --decoupled-lr / --decoupled-min-lr: the input embedding's and output layer's
  // rate (Parameter::embedding_or_output) runs the lr schedule with these as its peak and floor;
  // negative: no decoupled rate.
  double decoupled_lr = -1.0, decoupled_min_lr = 0.0;
  bool decoupled() const { return decoupled_lr >= 0.0; }
  LrSchedule decoupled_schedule() const {
    LrSchedule d = lr;
    d.lr = decoupled_lr;
    d.min_lr = decoupled_min_lr;
    return d;
  }
  std::int64_t samples_per_iteration = 1;  // the global batch
  bool counts_samples = false;             // a run by samples (training.train_samples): describe() in samples

  // "cosine decay of lr 0.0003 to min_lr 3e-05 over 300 iterations after 30 of warmup; weight decay 0.1"
  std::string describe() const;
};

// How long the run is: by iterations (train_samples 0), or by samples (training.train_samples,
// train_iters = train_samples / global_batch_size).
struct RunLength {
  std::int64_t train_iters = 1, global_batch_size = 1, train_samples = 0;
};

// The [optimizer] schedule keys: lr, min_lr, decoupled_lr, decoupled_min_lr, lr_decay_style, lr_warmup_iters | lr_warmup_fraction,
// lr_warmup_init, lr_decay_iters, lr_wsd_decay_style, lr_wsd_decay_iters, weight_decay,
// start_weight_decay, end_weight_decay, weight_decay_incr_style; with train_samples the lengths are
// lr_warmup_samples, lr_decay_samples, lr_wsd_decay_samples instead of the _iters keys (as
// Megatron-LM, mixing the two is an error). ConfigError naming the key otherwise.
OptimizerParamSchedule read_optimizer_param_schedule(const Config& config, const RunLength& run);

// What a resumed run does with the schedule its checkpoint was saved with, as Megatron-LM's
// --override-opt_param-scheduler and --use-checkpoint-opt_param-scheduler ([optimizer] keys of
// those names, at most one true): by default the two must agree.
enum class ScheduleOnResume { must_match, use_config, use_checkpoint };
ScheduleOnResume read_schedule_on_resume(const Config& config);

// "lr decay: 800 samples (100 iterations) in the checkpoint, 1600 samples (200 iterations) here" for
// each setting that changes the rates the run applies. Megatron's scheduler compares its
// state_dict's fields whether they matter or not; here a setting that cannot change a rate (the
// decay length of a constant rate, the increment length of a constant weight decay) is left out,
// and the warmup's start and WSD's anneal, which Megatron does not record, are in. Empty when the
// schedules are the same.
std::vector<std::string> schedule_differences(const OptimizerParamSchedule& checkpoint,
                                              const OptimizerParamSchedule& run);

}  // namespace tessera
