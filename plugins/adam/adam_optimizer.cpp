// The "adam" optimizer plugin: Adam / AdamW (decoupled weight decay, the default as in Megatron-LM),
// bias correction, no weight decay on biases and norm weights. One fused pass per parameter
// (ops::adam_step) applies the clipping coefficient, the moments and the update together.
#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"

namespace tessera::adam {

namespace {

struct AdamSettings {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  bool decoupled = true;
};

class Adam : public Optimizer {
 public:
  Adam(const AdamSettings& s, const std::vector<Parameter*>& params) : s_(s), params_(params) {
    for (Parameter* p : params_) {
      m_.push_back(Tensor::zeros(p->value.shape()));
      v_.push_back(Tensor::zeros(p->value.shape()));
    }
  }

  void step(float lr, float grad_scale) override {
    ++step_;
    ops::AdamParams a;
    a.lr = lr;
    a.beta1 = s_.beta1;
    a.beta2 = s_.beta2;
    a.eps = s_.eps;
    a.grad_scale = grad_scale;
    a.step = step_;
    a.decoupled = s_.decoupled;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      a.weight_decay = params_[i]->weight_decay ? s_.weight_decay : 0.0f;
      ops::adam_step(params_[i]->value, params_[i]->grad, m_[i], v_[i], a);
    }
  }

  std::int64_t state_elements() const override { return 2 * count_elements(params_); }

  std::string describe() const override {
    return fmt::format("{} (beta1 {}, beta2 {}, eps {}, weight_decay {} on {} of {} tensors)",
                       s_.decoupled ? "AdamW" : "Adam", s_.beta1, s_.beta2, s_.eps, s_.weight_decay,
                       std::count_if(params_.begin(), params_.end(), [](const Parameter* p) { return p->weight_decay; }),
                       params_.size());
  }

 private:
  AdamSettings s_;
  std::vector<Parameter*> params_;
  std::vector<Tensor> m_, v_;
  std::int64_t step_ = 0;
};

// A beta in [0, 1). get_float's ranges are inclusive, and beta = 1 makes the bias correction
// 1 - beta^t zero, so every update is NaN.
float get_beta(const ConfigSection& s, const std::string& key, double fallback) {
  const double v = s.get_float(key, fallback);
  if (!(v >= 0.0 && v < 1.0))  // written so that NaN is out of range
    throw ConfigError(fmt::format("{}: {}.{} = {} is out of range [0, 1)", s.origin(key), s.name(), key, v));
  return static_cast<float>(v);
}

std::unique_ptr<Optimizer> make_adam(const ConfigSection& s, const std::vector<Parameter*>& params) {
  AdamSettings a;
  a.beta1 = get_beta(s, "adam_beta1", 0.9);
  a.beta2 = get_beta(s, "adam_beta2", 0.999);
  a.eps = static_cast<float>(s.get_float("adam_eps", 1e-8, 0.0, 1.0));
  a.weight_decay = static_cast<float>(s.get_float("weight_decay", 0.01, 0.0, 10.0));
  a.decoupled = s.get_bool("decoupled_weight_decay", true);
  return std::make_unique<Adam>(a, params);
}

}  // namespace
}  // namespace tessera::adam

TESSERA_PLUGIN(optimizer, adam, tessera::adam::make_adam)
