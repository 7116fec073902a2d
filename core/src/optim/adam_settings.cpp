#include "tessera/optim/adam_settings.hpp"

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera {

namespace {

// A beta in [0, 1). get_float's ranges are inclusive, and beta = 1 makes the bias correction
// 1 - beta^t zero, so every update is NaN.
float get_beta(const ConfigSection& s, const std::string& key, double fallback) {
  const double v = s.get_float(key, fallback);
  if (!(v >= 0.0 && v < 1.0))  // written so that NaN is out of range
    throw ConfigError(fmt::format("{}: {}.{} = {} is out of range [0, 1)", s.origin(key), s.name(), key, v));
  return static_cast<float>(v);
}

}  // namespace

AdamSettings read_adam_settings(const ConfigSection& s) {
  AdamSettings a;
  a.beta1 = get_beta(s, "adam_beta1", 0.9);
  a.beta2 = get_beta(s, "adam_beta2", 0.999);
  a.eps = static_cast<float>(s.get_float("adam_eps", 1e-8, 0.0, 1.0));
  a.decoupled = s.get_bool("decoupled_weight_decay", true);
  return a;
}

ops::AdamParams adam_params(const AdamSettings& s, float lr, float grad_scale, std::int64_t step) {
  ops::AdamParams a;
  a.lr = lr;
  a.beta1 = s.beta1;
  a.beta2 = s.beta2;
  a.eps = s.eps;
  a.grad_scale = grad_scale;
  a.step = step;
  a.decoupled = s.decoupled;
  return a;
}

std::string describe_adam(const AdamSettings& s) {
  return fmt::format("{} (beta1 {}, beta2 {}, eps {}", s.decoupled ? "AdamW" : "Adam", s.beta1, s.beta2, s.eps);
}

}  // namespace tessera
