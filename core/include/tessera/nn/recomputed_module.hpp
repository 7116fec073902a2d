// Selective recompute of one module (Megatron-Core's recompute_modules "mlp", "moe",
// "shared_experts": its "normal checkpointing" kinds): in forward the wrapped module runs into a
// scratch store that is dropped at once, so only its input is kept; in backward its forward runs
// again into a scratch store from that input (the same ops, dropout masks and routing: bit-identical
// results), then its backward. Inference passes straight through.
#pragma once
#include <memory>

#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"

namespace tessera {

class RecomputedModule : public Module {
 public:
  // keep_input = false: not even the input is kept; backward_with_input takes it from the caller
  // (recompute_modules "layernorm" with "mlp" or "moe": the norm's output, recomputed too).
  explicit RecomputedModule(std::unique_ptr<Module> inner, bool keep_input = true)
      : inner_(std::move(inner)), keep_input_(keep_input) {}
  void collect_parameters(std::vector<Parameter*>& out) override { inner_->collect_parameters(out); }
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  Tensor backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) override;

  // The wrapped module's figures with only its input kept (`input_elements`: what this rank holds of
  // it; 0 without keep_input) and its forward collectives run again in backward.
  static ModuleCost cost(ModuleCost inner, std::int64_t input_elements);

 private:
  std::unique_ptr<Module> inner_;
  bool keep_input_;
};

}  // namespace tessera
