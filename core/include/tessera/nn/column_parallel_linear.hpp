// ColumnParallelLinear: y = x·Wᵀ + b with W [out, in] split by output rows across the tp group.
// Rank r holds W rows and b entries of its slice of the output ([out/tp, in], tp_split_dim 0), so
// it turns the replicated input x into its slice of y, with no communication in forward.
// Backward: the input gradient is each rank's partial dy_r·W_r, summed by copy_to_tp's all-reduce
// (unless the caller sums several branches first and reduces once, reduce_input_grad = false).
//
// blocks > 1: the output is that many equal blocks each split across tp (the fused [K | V]
// projection: rank r gets [K_r | V_r], the layout attention expects for its own query groups).
// gather_output: all-gather the slices so every rank gets the full y (blocks must be 1); with
// sequence_parallel too, the whole [N, out] from the shard [N/tp, in] (GPT's multi-token
// prediction projection, which then keeps its own rows, as Megatron-Core's eh_proj).
// sequence_parallel (tp > 1; tensor_parallel_region.hpp): x is this rank's token
// rows [N/tp, in]. Forward all-gathers the rows (f becomes all_gather) and saves only the shard;
// backward all-gathers it again (as Megatron-LM does: an extra all-gather buys 1/tp of the memory)
// and reduce-scatters the input gradient back to the shard (or, with reduce_input_grad = false,
// returns the partial [N, in] gradient for the caller to sum and reduce-scatter).
// Parameter names and values are the full model's (counter-based init at the shard's offsets).
// With tp = 1 this is exactly Linear.
#pragma once
#include <memory>

#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera {

struct ColumnParallelOptions {
  std::int64_t in = 0, out = 0;  // full sizes
  bool bias = true;
  float init_std = 0.02f;
  int blocks = 1;
  bool gather_output = false;
  bool reduce_input_grad = true;
  bool sequence_parallel = false;
  // false: forward keeps nothing; backward_with_input takes x (as forward got it: under sequence
  // parallelism the shard, gathered again) from the caller, which recomputes it.
  bool keep_input = true;
};

class ColumnParallelLinear : public Module {
 public:
  ColumnParallelLinear(std::string name, const ColumnParallelOptions& o, std::uint64_t seed, TpGroup tp);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [..., in] replicated → y [..., out/tp] (or [..., out] with gather_output);
  // sequence parallel: x [N/tp, in] → y [N, out/tp].
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  Tensor backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) override;
  Parameter& weight() { return weight_; }
  // On `rows` token rows (all of them: under sequence parallelism this rank's input is rows/tp) on
  // one of `tp` ranks.
  static ModuleCost cost(const ColumnParallelOptions& o, std::int64_t rows, std::int64_t tp);

 private:
  ColumnParallelOptions o_;
  TpGroup tp_;
  Parameter weight_;
  std::unique_ptr<Parameter> bias_;
};

}  // namespace tessera
