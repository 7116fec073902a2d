#include "tessera/train/loss_scaler.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

LossScalerOptions read_loss_scaler(const Config& config, DType compute) {
  ConfigSection t = config.section("training");
  LossScalerOptions o;
  const bool dynamic_keys = t.has("initial_loss_scale") || t.has("min_loss_scale") || t.has("loss_scale_window") ||
                            t.has("hysteresis") || t.has("growth_factor") || t.has("backoff_factor");
  o.initial_scale = t.get_float("initial_loss_scale", o.initial_scale, 1e-30, 1e38);
  o.min_scale = t.get_float("min_loss_scale", o.min_scale, 1e-30, o.initial_scale);
  o.growth_interval = t.get_int("loss_scale_window", o.growth_interval, 1, std::int64_t{1} << 40);
  o.hysteresis = t.get_int("hysteresis", o.hysteresis, 1, std::int64_t{1} << 40);
  o.growth_factor = t.get_float("growth_factor", o.growth_factor, 1.0, 1e6);
  o.backoff_factor = t.get_float("backoff_factor", o.backoff_factor, 1e-6, 1.0);
  if (o.growth_factor <= 1.0 || o.backoff_factor >= 1.0)
    throw ConfigError(fmt::format("training.growth_factor ({}) must be > 1 and training.backoff_factor ({}) < 1 (in {})",
                                  o.growth_factor, o.backoff_factor, t.origin(t.has("growth_factor") ? "growth_factor" : "backoff_factor")));
  if (t.has("loss_scale")) {
    const double s = t.get_float("loss_scale", 1.0, -1e38, 1e38);
    if (!(s > 0.0) || !std::isfinite(s))
      throw ConfigError(fmt::format("training.loss_scale = {} in {} must be a positive number (a constant loss scale; "
                                    "leave it unset for fp16's dynamic scaling)", s, t.origin("loss_scale")));
    if (compute == DType::f32)
      throw ConfigError(fmt::format("training.loss_scale in {} applies only to mixed precision (training.precision = "
                                    "\"fp16\" or \"bf16\")", t.origin("loss_scale")));
    if (dynamic_keys)
      throw ConfigError(fmt::format("training.loss_scale in {} is a constant scale: the dynamic scaler's keys "
                                    "(initial_loss_scale, min_loss_scale, loss_scale_window, hysteresis, growth_factor, "
                                    "backoff_factor) do not apply with it", t.origin("loss_scale")));
    o.kind = LossScalerOptions::Kind::constant;
    o.loss_scale = s;
    return o;
  }
  if (compute == DType::f16) {
    o.kind = LossScalerOptions::Kind::dynamic;
  } else if (dynamic_keys) {
    throw ConfigError(fmt::format("the dynamic loss scaler's keys (initial_loss_scale, min_loss_scale, loss_scale_window, "
                                  "hysteresis, growth_factor, backoff_factor) in {} apply only to training.precision = "
                                  "\"fp16\"", config.source()));
  }
  return o;
}

LossScaler::LossScaler(const LossScalerOptions& o)
    : o_(o),
      scale_(o.kind == LossScalerOptions::Kind::dynamic    ? o.initial_scale
             : o.kind == LossScalerOptions::Kind::constant ? o.loss_scale
                                                           : 1.0),
      hysteresis_tracker_(o.hysteresis) {}

void LossScaler::update(bool found_inf) {
  if (o_.kind != LossScalerOptions::Kind::dynamic) return;
  if (found_inf) {
    growth_tracker_ = 0;
    --hysteresis_tracker_;
    if (hysteresis_tracker_ <= 0) scale_ = std::max(scale_ * o_.backoff_factor, o_.min_scale);
  } else {
    ++growth_tracker_;
    if (growth_tracker_ == o_.growth_interval) {
      growth_tracker_ = 0;
      hysteresis_tracker_ = o_.hysteresis;
      scale_ *= o_.growth_factor;
    }
  }
}

void LossScaler::load(const State& s) {
  if (!(s.scale > 0.0) || !std::isfinite(s.scale))
    throw FormatError(fmt::format("loss scale {} is not a positive number", s.scale));
  scale_ = s.scale;
  growth_tracker_ = s.growth_tracker;
  hysteresis_tracker_ = s.hysteresis_tracker;
}

}  // namespace tessera
