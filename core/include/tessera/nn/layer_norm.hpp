// LayerNorm over the last dim; saves mean/rstd (TransformerEngine-style) for backward.
#pragma once
#include "tessera/nn/module.hpp"

namespace tessera {

class LayerNorm : public Module {
 public:
  LayerNorm(std::string name, std::int64_t channels, float eps);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;

 private:
  Parameter weight_, bias_;
  float eps_;
};

}  // namespace tessera
