// The "adam" optimizer plugin: Adam / AdamW (decoupled weight decay, the default as in Megatron-LM),
// bias correction, no weight decay on biases and norm weights. One fused pass per parameter
// (ops::adam_step) applies the clipping coefficient, the moments and the update together.
#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/ops.hpp"
#include "tessera/optim/adam_settings.hpp"
#include "tessera/optimizer.hpp"
#include "tessera/plugin.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera::adam {

namespace {

class Adam : public Optimizer {
 public:
  Adam(const AdamSettings& s, const std::vector<Parameter*>& params) : s_(s), params_(params) {
    for (Parameter* p : params_) {
      m_.push_back(p->value.new_zeros(p->value.shape()));
      v_.push_back(p->value.new_zeros(p->value.shape()));
    }
  }

  void step(const UpdateRates& rates, float grad_scale) override {
    ops::AdamParams a = adam_params(s_, rates.lr, grad_scale, ++step_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Parameter& p = *params_[i];
      a.lr = rates.lr_for(p);
      a.weight_decay = p.weight_decay ? rates.weight_decay : 0.0f;
      ops::adam_step(p.value, p.grad, m_[i], v_[i], a, p.compute.defined() ? &p.compute : nullptr);
    }
  }

  std::int64_t state_elements() const override { return 2 * count_elements(params_); }

  // PyTorch's names: exp_avg (m) and exp_avg_sq (v) per parameter, and the step count.
  NamedTensors state() const override {
    NamedTensors out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      out.emplace_back(params_[i]->name + ".exp_avg", m_[i]);
      out.emplace_back(params_[i]->name + ".exp_avg_sq", v_[i]);
    }
    out.emplace_back("step", step_tensor(step_));
    return out;
  }

  void load_state(const std::map<std::string, Tensor>& saved) override {
    NamedTensors targets = state();
    targets.pop_back();  // step
    const std::int64_t step = read_step_tensor(saved, "adam");
    restore_tensors(saved, targets, "adam");
    step_ = step;
  }

  std::string describe() const override {
    return fmt::format("{}; weight decay on {} of {} tensors)", describe_adam(s_),
                       std::count_if(params_.begin(), params_.end(), [](const Parameter* p) { return p->weight_decay; }),
                       params_.size());
  }

 private:
  AdamSettings s_;
  std::vector<Parameter*> params_;
  std::vector<Tensor> m_, v_;
  std::int64_t step_ = 0;
};

std::unique_ptr<Optimizer> make_adam(const ConfigSection& s, const std::vector<Parameter*>& params,
                                     const OptimizerContext&) {
  return std::make_unique<Adam>(read_adam_settings(s), params);
}

}  // namespace
}  // namespace tessera::adam

TESSERA_PLUGIN(optimizer, adam, tessera::adam::make_adam)
