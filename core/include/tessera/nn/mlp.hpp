// Transformer MLP: fc1 (C → ffn) → GELU (or squared ReLU) → fc2 (ffn → C). Under tensor parallelism fc1 is
// column-parallel and fc2 row-parallel, so GELU acts on this rank's slice of ffn and the only
// communication is fc2's all-reduce in forward and fc1's (copy_to_tp) in backward. With
// sequence_parallel the input and output are this rank's token rows [N/tp, C]:
// fc1 all-gathers them, fc2 reduce-scatters (see column/row_parallel_linear.hpp).
//
// swiglu (Llama, Megatron-Core's order): fc1 (C → 2·ffn) → silu(x0)·x1 on its two halves → fc2; or
// any other gated linear unit of Megatron-Core's (MlpOptions::glu: quick GeGLU, clamps, offset).
// fc1's output is two blocks each split over tp (ColumnParallelOptions::blocks = 2), so rank r
// holds the matching rows [x0_r | x1_r] of both halves, as Megatron-Core's fc1 shard. bias = false
// (add_bias_linear = false) drops both layers' biases.
#pragma once
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"
#include "tessera/ops.hpp"

namespace tessera {

struct MlpOptions {
  std::int64_t hidden = 0, ffn_hidden = 0;
  float init_std = 0.02f, output_init_std = 0.02f;
  bool sequence_parallel = false;
  bool swiglu = false;  // fc1 → [x0 | x1] → silu(x0)·x1 instead of GELU
  GatedLinearUnit glu{};  // with swiglu: the unit (quick GeGLU, clamps, linear offset: gated_linear_unit.hpp)
  bool squared_relu = false;  // max(x, 0)² instead of GELU (not with swiglu)
  ops::GeluForm gelu = ops::GeluForm::tanh;  // the GELU's form (Megatron's fused bias-GELU: tanh)
  bool bias = true;     // fc1 and fc2 biases
  // false (not with sequence_parallel): neither fc1's input gradient nor fc2's output is summed over
  // tp; the caller sums several MLPs' partial results and reduces once (mixture-of-experts layers).
  bool reduce = true;
  // Selective recompute of the activation (Megatron-Core's recompute_modules "moe_act", for
  // experts): fc2's input is not kept but computed again from fc1's output in backward.
  bool recompute_activation = false;
  // false: fc1 does not keep its input (the norm's output); backward_with_input takes it from the
  // caller, which recomputes it (recompute_modules "layernorm").
  bool keep_input = true;
  // The transformer layer's index in the whole model (-1: none); mixture-of-experts layers tag their
  // per-layer statistics with it.
  std::int64_t layer_index = -1;
};

class Mlp : public Module {
 public:
  Mlp(const std::string& name, const MlpOptions& o, std::uint64_t seed, TpGroup tp = nullptr);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  Tensor backward_with_input(StepContext& ctx, const Tensor& dy, const Tensor& x) override;
  // For a caller that skips backward (an expert no token was routed to): the gradients are final as
  // they are. Reported in the order backward reports them, which every data-parallel rank must
  // reproduce (the overlapped gradient all-reduces start in that order).
  void report_grads_final(StepContext& ctx);
  // On `rows` token rows on one of `tp` ranks: fc1's input, the activation's input and output.
  static ModuleCost cost(const MlpOptions& o, std::int64_t rows, std::int64_t tp);

 private:
  Tensor activation(const Tensor& h) const;  // GELU, squared ReLU or the gated unit of fc1's output
  // Through fc2 and the activation: fc1's output gradient.
  Tensor backward_to_fc1(StepContext& ctx, const Tensor& dy);
  bool swiglu_, squared_relu_, recompute_activation_;
  ops::GeluForm gelu_;
  GatedLinearUnit glu_;
  ColumnParallelLinear fc1_;
  RowParallelLinear fc2_;
};

// The run's model line for a gated MLP: "SwiGLU", "quick GeGLU", "… (clamp 7, linear offset 1)".
std::string describe_gated_linear_unit(const GatedLinearUnit& g);

}  // namespace tessera
