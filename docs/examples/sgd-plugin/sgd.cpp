// Plain SGD with momentum as a Tessera optimizer plugin: `[optimizer] plugin = "sgd"`.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/ops.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/optimizer_state_format.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/checkpoint.hpp"

namespace {

class Sgd : public tessera::Optimizer {
 public:
  Sgd(float momentum, const std::vector<tessera::Parameter*>& params) : momentum_(momentum), params_(params) {
    for (auto* p : params_) velocity_.push_back(tessera::Tensor::zeros(p->value.shape()));
  }
  // Plain SGD: no weight decay (rates.weight_decay is the schedule's, for optimizers that apply one).
  // rates.lr_for(p): the embedding's and output layer's own rate with [optimizer] decoupled_lr.
  void step(const tessera::UpdateRates& rates, float grad_scale) override {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      tessera::ops::scale(velocity_[i], momentum_);                    // v = μ·v
      tessera::ops::axpy(grad_scale, params_[i]->grad, velocity_[i]);  //   + clip·g
      tessera::ops::axpy(-rates.lr_for(*params_[i]), velocity_[i], params_[i]->value);  // w -= lr·v
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

// How `tessera checkpoint reshard` moves the state to another layout: one slot per parameter element
// (its velocity), the same on every data-parallel rank.
class SgdStateFormat : public tessera::OptimizerStateFormat {
 public:
  std::vector<std::string> slots() const override { return {"momentum_buffer"}; }
  bool replicated_over_dp() const override { return true; }
  void unpack(const std::map<std::string, tessera::Tensor>& saved, const tessera::OptimizerRankPosition& at,
              tessera::ParameterSlots& slots) const override {
    tessera::restore_tensors(saved, named(slots, at), "sgd");
  }
  tessera::NamedTensors pack(const tessera::ParameterSlots& slots,
                             const tessera::OptimizerRankPosition& at) const override {
    return named(slots, at);
  }

 private:
  static tessera::NamedTensors named(const tessera::ParameterSlots& slots, const tessera::OptimizerRankPosition& at) {
    tessera::NamedTensors out;
    for (const auto* p : at.params) out.emplace_back(p->name + ".momentum_buffer", slots.at(p->name)[0]);
    return out;
  }
};

std::unique_ptr<tessera::OptimizerStateFormat> make_sgd_state(const tessera::ConfigSection&) {
  return std::make_unique<SgdStateFormat>();
}

std::unique_ptr<tessera::Optimizer> make_sgd(const tessera::ConfigSection& s,
                                             const std::vector<tessera::Parameter*>& params,
                                             const tessera::OptimizerContext&) {  // layout, gradient buckets
  return std::make_unique<Sgd>(static_cast<float>(s.get_float("momentum", 0.9, 0.0, 1.0)), params);
}

}  // namespace

TESSERA_PLUGIN(optimizer, sgd, make_sgd)
TESSERA_PLUGIN(optimizer_state, sgd, make_sgd_state)
