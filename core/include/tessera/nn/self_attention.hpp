// Causal self-attention with num_query_groups: MHA (groups = heads), GQA and MQA (groups = 1) are
// one code path. Query and key/value projections are separate linears (as BigCode's MQA has them,
// so that tensor parallelism can split Q by heads while replicating a single K/V head).
//   x [B,T,C] → q [B,T,Hq·D], kv [B,T,2·Hkv·D] → attention → [B,T,Hq·D] → out_proj → [B,T,C]
#pragma once
#include "tessera/nn/linear.hpp"

namespace tessera {

struct AttentionOptions {
  std::int64_t hidden = 0, heads = 0, query_groups = 0;  // query_groups 0 → heads (MHA)
  float init_std = 0.02f, output_init_std = 0.02f;
};

class SelfAttention : public Module {
 public:
  SelfAttention(const std::string& name, const AttentionOptions& o, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x must be [B,T,C].
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;

 private:
  std::int64_t heads_, groups_, head_dim_;
  Linear query_, key_value_, output_;
};

}  // namespace tessera
