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

  // Learning rate for 1-based iteration `iteration`.
  double at(std::int64_t iteration) const;
};

}  // namespace tessera
