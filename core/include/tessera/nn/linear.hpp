// Linear: y[N,out] = x[N,in] · Wᵀ + b, weight in PyTorch layout [out, in].
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

struct LinearOptions {
  std::int64_t in = 0, out = 0;
  bool bias = true;
  float init_std = 0.02f;
  // false: forward keeps nothing; backward_with_input takes x from the caller.
  bool keep_input = true;
};

class Linear : public Module {
 public:
  Linear(std::string name, const LinearOptions& o, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  Tensor backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) override;
  Parameter& weight() { return weight_; }
  // Applied to `rows` rows: keeps its input (unless keep_input = false).
  static ModuleCost cost(const LinearOptions& o, std::int64_t rows);

 private:
  bool keep_input_;
  Parameter weight_;
  std::unique_ptr<Parameter> bias_;
};

}  // namespace tessera
