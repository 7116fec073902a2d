// Transformer MLP: fc1 (C → ffn) → GELU → fc2 (ffn → C). Under tensor parallelism fc1 is
// column-parallel and fc2 row-parallel, so GELU acts on this rank's slice of ffn and the only
// communication is fc2's all-reduce in forward and fc1's (copy_to_tp) in backward. With
// sequence_parallel the input and output are this rank's token rows [N/tp, C]:
// fc1 all-gathers them, fc2 reduce-scatters (see column/row_parallel_linear.hpp).
#pragma once
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"

namespace tessera {

struct MlpOptions {
  std::int64_t hidden = 0, ffn_hidden = 0;
  float init_std = 0.02f, output_init_std = 0.02f;
  bool sequence_parallel = false;
};

class Mlp : public Module {
 public:
  Mlp(const std::string& name, const MlpOptions& o, std::uint64_t seed, TpGroup tp = nullptr);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;
  // On `rows` token rows on one of `tp` ranks: fc1's input, GELU's input and output.
  static ModuleCost cost(const MlpOptions& o, std::int64_t rows, std::int64_t tp);

 private:
  ColumnParallelLinear fc1_;
  RowParallelLinear fc2_;
};

}  // namespace tessera
