// RMSNorm over the last dim (Llama; Megatron-Core's normalization = "RMSNorm"): y = w · x·rstd,
// rstd = 1/√(mean(x²) + eps), computed in f32; one parameter, "<name>.weight" (ones), no bias. Saves
// its input and rstd per row for backward.
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

class RmsNorm : public Module {
 public:
  RmsNorm(std::string name, std::int64_t channels, float eps);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  // Applied to `rows` rows: keeps its input and one statistic per row.
  static ModuleCost cost(std::int64_t channels, std::int64_t rows);

 private:
  struct Saved {
    Tensor x, rstd;
    std::vector<Tensor> tensors() const { return {x, rstd}; }
  };
  Parameter weight_;
  float eps_;
};

}  // namespace tessera
