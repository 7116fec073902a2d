// Dropout with a counter-based mask: nothing is stored, backward regenerates the mask from the
// same (seed, iteration, microbatch, site) key.
#pragma once
#include "tessera/nn/module.hpp"

namespace tessera {

class Dropout : public Module {
 public:
  Dropout(float p, std::uint64_t site) : p_(p), site_(site) {}
  void collect_parameters(std::vector<Parameter*>&) override {}
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  bool active(const StepContext& ctx) const { return ctx.training && p_ > 0.0f; }

 private:
  float p_;
  std::uint64_t site_;
};

}  // namespace tessera
