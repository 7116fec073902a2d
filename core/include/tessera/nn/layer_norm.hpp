// LayerNorm over the last dim; saves mean/rstd (TransformerEngine-style) for backward. With
// zero_centered_gamma (Megatron-LM's --apply-layernorm-1p) the weight γ starts at 0 and the norm
// scales by 1 + γ (formed in the weight's dtype, as Megatron's LayerNorm1P does), so that weight
// decay pulls it toward the identity.
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

class LayerNorm : public Module {
 public:
  LayerNorm(std::string name, std::int64_t channels, float eps, bool zero_centered_gamma = false);
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
  // The scale the op applies: the weight, or 1 + weight.
  Tensor scale() const;
  Parameter weight_, bias_;
  float eps_;
  bool zero_centered_gamma_;
  mutable Tensor ones_;  // zero_centered_gamma: ones on the weight's device and dtype, made once
};

}  // namespace tessera
