// Loss scaling for fp16 training, as Megatron-LM's grad_scaler.py. The loss gradient is multiplied
// by the scale so that small gradients survive fp16's range; the trainer divides it back out of the
// f32 gradients (fused into the optimizer's pass) and, when the global gradient norm is not finite
// (every rank sees the same all-reduced norm), skips the step — no parameter, moment, Adam step or
// learning-rate advance — and tells the scaler.
//
// DynamicGradScaler (fp16's default): after a non-finite step the hysteresis counter drops by one,
// and when it reaches 0 the scale backs off (× backoff_factor, not below min_scale); after
// growth_interval finite steps in a row it grows (× growth_factor) and the hysteresis counter is
// refilled. A constant scale (`loss_scale = N`) never changes; bf16 takes one too, but needs none.
//
// [training] keys (Megatron's argument names): loss_scale (constant; unset = dynamic with fp16),
// initial_loss_scale (2^32), min_loss_scale (1.0), loss_scale_window (1000, the growth interval),
// hysteresis (2); and DynamicGradScaler's own growth_factor (2.0) and backoff_factor (0.5), which
// Megatron-LM fixes in code.
#pragma once
#include <cstdint>

#include "tessera/dtype.hpp"

namespace tessera {

class Config;

struct LossScalerOptions {
  enum class Kind { none, constant, dynamic } kind = Kind::none;
  double loss_scale = 1.0;  // constant
  double initial_scale = 4294967296.0, min_scale = 1.0, growth_factor = 2.0, backoff_factor = 0.5;
  std::int64_t growth_interval = 1000, hysteresis = 2;
};

// ConfigError for a scale ≤ 0, factors out of range, or dynamic-scaler keys without fp16.
LossScalerOptions read_loss_scaler(const Config& config, DType compute);

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& o = {});
  // What the loss gradient is multiplied by (1 without scaling).
  double scale() const { return scale_; }
  // With a scaler (constant or dynamic), non-finite gradients skip the step instead of stopping the
  // run, as Megatron-LM's mixed-precision optimizer does whenever it has a grad scaler.
  bool skips_nonfinite() const { return active(); }
  bool dynamic() const { return o_.kind == LossScalerOptions::Kind::dynamic; }
  bool active() const { return o_.kind != LossScalerOptions::Kind::none; }
  // After each iteration: whether its gradients held an inf or NaN (Megatron's update rule).
  void update(bool found_inf);

  struct State {
    double scale = 1.0;
    std::int64_t growth_tracker = 0, hysteresis_tracker = 0;
  };
  State state() const { return {scale_, growth_tracker_, hysteresis_tracker_}; }
  void load(const State& s);

 private:
  LossScalerOptions o_;
  double scale_;
  std::int64_t growth_tracker_ = 0, hysteresis_tracker_;
};

}  // namespace tessera
