// Dropout with a counter-based mask: nothing is stored, backward regenerates the mask from the
// same (seed, iteration, microbatch, site) key.
//
// element_offset: where x starts in the activation the mask is defined over. Under sequence
// parallelism a rank drops out only its token rows [first, first + n) of [N, C], and passes
// first·C, so that every rank's mask is its part of the one-process mask. Under context parallelism
// a rank's rows are pieces of the one-process rows: the TokenRows overloads place each piece.
#pragma once
#include "tessera/nn/context_parallel.hpp"
#include "tessera/nn/module.hpp"

namespace tessera {

class Dropout : public Module {
 public:
  Dropout(float p, std::uint64_t site) : p_(p), site_(site) {}
  void collect_parameters(std::vector<Parameter*>&) override {}
  Tensor forward(StepContext& ctx, const Tensor& x) override { return forward(ctx, x, 0); }
  Tensor backward(StepContext& ctx, const Tensor& dy) override { return backward(ctx, dy, 0); }
  Tensor forward(StepContext& ctx, const Tensor& x, std::int64_t element_offset);
  Tensor backward(StepContext& ctx, const Tensor& dy, std::int64_t element_offset);
  // x [..., C] as token rows placed by `rows`.
  Tensor forward(StepContext& ctx, const Tensor& x, const TokenRows& rows) { return apply(ctx, x, rows, false); }
  Tensor backward(StepContext& ctx, const Tensor& dy, const TokenRows& rows) { return apply(ctx, dy, rows, true); }
  bool active(const StepContext& ctx) const { return ctx.training && p_ > 0.0f; }

 private:
  Tensor apply(StepContext& ctx, const Tensor& x, const TokenRows& rows, bool backward);
  float p_;
  std::uint64_t site_;
};

}  // namespace tessera
