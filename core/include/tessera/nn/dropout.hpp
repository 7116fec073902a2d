// Dropout with a counter-based mask: nothing is stored, backward regenerates the mask from the
// same (seed, iteration, microbatch, site) key.
//
// x [..., C] is seen as token rows, and `rows` (nn/context_parallel.hpp) says where they sit in the
// activation the mask is defined over: under sequence parallelism a rank drops out only its token
// rows [first, first + n) of [N, C] (TokenRows{first}); under context parallelism a rank's rows
// are pieces of the one-process rows (TokenRows::of). Every rank's mask is then its part of the
// one-process mask.
#pragma once
#include "tessera/nn/context_parallel.hpp"
#include "tessera/nn/module.hpp"

namespace tessera {

class Dropout : public Module {
 public:
  Dropout(float p, std::uint64_t site) : p_(p), site_(site) {}
  void collect_parameters(std::vector<Parameter*>&) override {}
  Tensor forward(StepContext& ctx, const Tensor& x) override { return apply(ctx, x, TokenRows{}, false); }
  Tensor backward(StepContext& ctx, const Tensor& dy) override { return apply(ctx, dy, TokenRows{}, true); }
  Tensor forward(StepContext& ctx, const Tensor& x, const TokenRows& rows) { return apply(ctx, x, rows, false); }
  Tensor backward(StepContext& ctx, const Tensor& dy, const TokenRows& rows) { return apply(ctx, dy, rows, true); }
  bool active(const StepContext& ctx) const { return ctx.training && p_ > 0.0f; }

 private:
  Tensor apply(StepContext& ctx, const Tensor& x, const TokenRows& rows, bool backward);
  float p_;
  std::uint64_t site_;
};

}  // namespace tessera
