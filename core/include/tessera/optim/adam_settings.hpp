// The [optimizer] keys of Adam/AdamW, shared by the adam and distributed_adam plugins (same keys,
// same checks, same update), and the update's fixed arguments for one step.
#pragma once
#include <cstdint>
#include <string>

#include "tessera/ops.hpp"

namespace tessera {

class ConfigSection;

struct AdamSettings {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // weight decay: the trainer's schedule (UpdateRates)
  bool decoupled = true;  // AdamW (Megatron-LM's default)
};

// adam_beta1, adam_beta2 (each in [0, 1)), adam_eps, decoupled_weight_decay.
AdamSettings read_adam_settings(const ConfigSection& s);

// ops::adam_step's arguments for update number `step` (from 1), without the per-tensor weight decay.
ops::AdamParams adam_params(const AdamSettings& s, float lr, float grad_scale, std::int64_t step);

// "AdamW (beta1 0.9, beta2 0.999, eps 1e-08" — the start of describe().
std::string describe_adam(const AdamSettings& s);

}  // namespace tessera
