// RowParallelLinear: y = x·Wᵀ + b with W [out, in] split by input columns across the tp group.
// Rank r holds W[:, its slice of in] ([out, in/tp], tp_split_dim 1) and receives x already split
// the same way (a column-parallel layer's output), so its x_r·W_rᵀ is a partial sum of y; the
// reduce_from_tp all-reduce completes it and the bias, replicated, is added once after it. In
// backward nothing is communicated: dy is replicated, dx_r = dy·W_r is this rank's slice, and every
// rank computes the same full bias gradient. With tp = 1 this is exactly Linear.
//
// sequence_parallel (tp > 1; tensor_parallel_region.hpp): g becomes a
// reduce-scatter, so y is this rank's token rows [N/tp, out] and the bias is added to the shard.
// Backward all-gathers dy; the bias gradient is then taken from the full dy, so it is complete and
// equal on every rank and needs no reduction over tp (Megatron-LM sums per-shard bias gradients
// over tp instead; same result, one all-reduce more).
//
// reduce_output = false (tp > 1, not with sequence_parallel): y is this rank's partial sum, the bias
// added on tp rank 0 only, for a caller that sums several layers' outputs and reduces once (the
// experts of a mixture-of-experts layer).
#pragma once
#include <memory>

#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera {

struct RowParallelOptions {
  std::int64_t in = 0, out = 0;  // full sizes
  bool bias = true;
  float init_std = 0.02f;
  bool sequence_parallel = false;
  bool reduce_output = true;
  // false: forward keeps nothing and backward takes the input from its caller, which recomputes it
  // (an MLP recomputing its activation: MlpOptions::recompute_activation).
  bool keep_input = true;
};

class RowParallelLinear : public Module {
 public:
  RowParallelLinear(std::string name, const RowParallelOptions& o, std::uint64_t seed, TpGroup tp);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [..., in/tp] (this rank's slice) → y [..., out], the same on every rank;
  // sequence parallel: x [N..., in/tp] → y [N/tp, out], this rank's token rows.
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  // Backward with forward's input x given (keep_input = false).
  Tensor backward(StepContext& ctx, const Tensor& dy, const Tensor& x);
  Parameter& weight() { return weight_; }
  // On `rows` token rows on one of `tp` ranks.
  static ModuleCost cost(const RowParallelOptions& o, std::int64_t rows, std::int64_t tp);

 private:
  TpGroup tp_;
  bool sequence_parallel_, reduce_output_, keep_input_;
  Parameter weight_;
  std::unique_ptr<Parameter> bias_;
};

}  // namespace tessera
