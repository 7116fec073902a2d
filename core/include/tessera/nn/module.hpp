// Module: explicit forward and backward, no tape (the llm.c way, DESIGN.md §2).
//
// forward saves what backward needs in ctx.store() (nothing when !ctx.training); backward consumes
// it. Parameter grads accumulate (+=); the returned input gradient is a fresh tensor.
#pragma once
#include <vector>

#include "tessera/nn/parameter.hpp"
#include "tessera/nn/step_context.hpp"

namespace tessera {

class Module {
 public:
  virtual ~Module() = default;
  virtual void collect_parameters(std::vector<Parameter*>& out) = 0;
  virtual Tensor forward(StepContext& ctx, const Tensor& x) = 0;
  virtual Tensor backward(StepContext& ctx, const Tensor& dy) = 0;
  // Backward of a module built not to keep its input (keep_input = false): forward's input x is
  // handed back by the caller, which recomputes it (recompute_modules "layernorm": the norm's output
  // feeding this module). Modules that always keep their input throw.
  virtual Tensor backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x);
};

}  // namespace tessera
