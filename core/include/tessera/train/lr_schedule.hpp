// Learning-rate schedule as Megatron-LM has it: linear warmup from 0 to lr over lr_warmup_iters,
// then constant, linear, cosine or inverse-square-root decay to min_lr at lr_decay_iters.
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

struct LrSchedule {
  double lr = 1e-4, min_lr = 0.0;
  std::int64_t warmup_iters = 0, decay_iters = 0;
  std::string style = "cosine";  // constant | linear | cosine | inverse-square-root
  // The global batch. Megatron-LM's scheduler counts samples, which only shows in inverse-square-root
  // without warmup: it clamps the warmup to 1 sample, not 1 iteration (lr / sqrt(samples seen)).
  std::int64_t samples_per_iteration = 1;

  // The rate after `iteration` optimizer steps (0 before the first). Megatron-LM's
  // OptimizerParamScheduler::get_lr at num_steps = iteration × global batch (its steps count samples;
  // with a fixed batch the ratios are the same). Trainer::learning_rate says which one an update applies.
  double at(std::int64_t iteration) const;
};

}  // namespace tessera
