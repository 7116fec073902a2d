// Causal self-attention with num_query_groups: MHA (groups = heads), GQA and MQA (groups = 1) are
// one code path. Query and key/value projections are separate linears (as BigCode's MQA has them,
// so that tensor parallelism can split Q by heads while replicating a single K/V head).
//   x [B,T,C] → q [B,T,Hq·D], kv [B,T,2·Hkv·D] → attention → [B,T,Hq·D] → out_proj → [B,T,C]
//
// Tensor parallelism splits the heads: rank r computes heads [r·Hq/tp, (r+1)·Hq/tp).
// - query: column-parallel (its heads' rows).
// - key_value, groups ≥ tp: column-parallel by groups; the weight is [K of all groups | V of all
//   groups], so a rank's shard is two row ranges, [K_r | V_r] (blocks = 2).
// - key_value, groups < tp (MQA, groups = 1): a replicated Linear on every rank (BigCode's MQA); each
//   rank's gradient covers only its heads, so its parameters set reduce_grad_over_tp.
// - output: row-parallel (all-reduce of the partial sums; bias added once).
// The input gradients of query and key_value are summed locally and all-reduced once (copy_to_tp).
//
// sequence_parallel (tp > 1; tensor_parallel_region.hpp): x is this rank's token
// rows [B·T/tp, C]. They are all-gathered once for all projections and seen as [B,T,C] with
// T = ctx.seq_length; the output projection reduce-scatters back to [B·T/tp, C], and the summed
// input gradient is reduce-scattered instead of all-reduced. The projections keep the gathered
// input (one [B·T, C] tensor, shared by Q and K/V) rather than only the shard: Q and K/V are
// separate linears here, and re-gathering for each in backward would double that communication.
#pragma once
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/row_parallel_linear.hpp"

namespace tessera {

struct AttentionOptions {
  std::int64_t hidden = 0, heads = 0, query_groups = 0;  // query_groups 0 → heads (MHA)
  float init_std = 0.02f, output_init_std = 0.02f;
  TpGroup tp;  // null: one process
  // Megatron-LM's sequence parallelism (no effect with one tp rank); whole layers use it together.
  bool sequence_parallel = false;
  // Selective activation recompute (Megatron-LM's "selective"): forward does not keep the attention
  // op's own state (the log-sum-exp [B,H/tp,T]; the flash kernel never holds probabilities);
  // backward reruns the op on the saved q and kv (same op, same inputs: bit-identical gradients).
  bool recompute_core = false;
};

class SelfAttention : public Module {
 public:
  SelfAttention(const std::string& name, const AttentionOptions& o, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [B,T,C] → [B,T,C]; sequence parallel: x [B·T/tp, C] → [B·T/tp, C] (needs ctx.seq_length).
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;

 private:
  // q and kv always; the attention output and its lse unless selective recompute rebuilds them.
  struct Saved {
    Tensor q, kv, context, lse;
    std::vector<Tensor> tensors() const { return {q, kv, context, lse}; }
  };
  TpGroup tp_;
  bool sequence_parallel_, recompute_core_;
  std::int64_t heads_, groups_, head_dim_;  // heads_ and groups_ on this rank
  ColumnParallelLinear query_;
  std::unique_ptr<Module> key_value_;  // ColumnParallelLinear, or Linear replicated over tp
  RowParallelLinear output_;
};

}  // namespace tessera
