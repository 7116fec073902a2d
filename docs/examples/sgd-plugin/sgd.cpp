// Plain SGD with momentum as a Tessera optimizer plugin: `[optimizer] plugin = "sgd"`.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/checkpoint.hpp"

namespace {

class Sgd : public tessera::Optimizer {
 public:
  Sgd(float momentum, const std::vector<tessera::Parameter*>& params) : momentum_(momentum), params_(params) {
    for (auto* p : params_) velocity_.push_back(tessera::Tensor::zeros(p->value.shape()));
  }
  void step(float lr, float grad_scale) override {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      tessera::ops::scale(velocity_[i], momentum_);                    // v = μ·v
      tessera::ops::axpy(grad_scale, params_[i]->grad, velocity_[i]);  //   + clip·g
      tessera::ops::axpy(-lr, velocity_[i], params_[i]->value);        // w -= lr·v
    }
  }
  std::int64_t state_elements() const override { return tessera::count_elements(params_); }
  std::string describe() const override { return fmt::format("SGD (momentum {})", momentum_); }
  // Resumable checkpoints: the velocities by parameter name; restore_tensors checks names and shapes.
  tessera::NamedTensors state() const override {
    tessera::NamedTensors out;
    for (std::size_t i = 0; i < params_.size(); ++i) out.emplace_back(params_[i]->name + ".momentum_buffer", velocity_[i]);
    return out;
  }
  void load_state(const std::map<std::string, tessera::Tensor>& saved) override {
    tessera::restore_tensors(saved, state(), "sgd");
  }

 private:
  float momentum_;
  std::vector<tessera::Parameter*> params_;
  std::vector<tessera::Tensor> velocity_;
};

std::unique_ptr<tessera::Optimizer> make_sgd(const tessera::ConfigSection& s,
                                             const std::vector<tessera::Parameter*>& params,
                                             const tessera::OptimizerContext&) {  // layout, gradient buckets
  return std::make_unique<Sgd>(static_cast<float>(s.get_float("momentum", 0.9, 0.0, 1.0)), params);
}

}  // namespace

TESSERA_PLUGIN(optimizer, sgd, make_sgd)
