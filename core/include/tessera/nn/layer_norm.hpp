// LayerNorm over the last dim; saves mean/rstd (TransformerEngine-style) for backward.
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

class LayerNorm : public Module {
 public:
  LayerNorm(std::string name, std::int64_t channels, float eps);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  // Applied to `rows` rows: keeps its input and two statistics per row.
  static ModuleCost cost(std::int64_t channels, std::int64_t rows);

 private:
  struct Saved {  // what backward needs: the input and its per-row statistics
    Tensor x, mean, rstd;
    std::vector<Tensor> tensors() const { return {x, mean, rstd}; }
  };
  Parameter weight_, bias_;
  float eps_;
};

}  // namespace tessera
