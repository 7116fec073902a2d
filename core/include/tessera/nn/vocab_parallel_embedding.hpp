// VocabParallelEmbedding: the token-embedding table [V, C] split by vocabulary rows across the tp
// group (tp_split_dim 0). Rank r holds ids [first_id, first_id + V/tp); an id it does not hold gives
// a zero row, and the all-reduce over tp (exact: one non-zero term per row) yields table[id] on
// every rank. Backward needs no communication: each rank adds into the rows it holds. The table
// doubles as a tied LM head (weight(), first_id()). With tp = 1 this is a plain embedding.
//
// sequence_parallel (tp > 1; tensor_parallel_region.hpp): the all-reduce becomes a reduce-scatter,
// so each rank gets only its token rows [N/tp, C]; backward all-gathers the rows' gradient, so each
// rank's table gradient is complete for the rows it holds, as without it.
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/module_cost.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera {

class VocabParallelEmbedding : public Module {
 public:
  // `vocab` is the full (padded) vocabulary; tp must divide it.
  VocabParallelEmbedding(std::string name, std::int64_t vocab, std::int64_t hidden, float init_std,
                         std::uint64_t seed, TpGroup tp, bool sequence_parallel = false);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // ids i32 [N] → [N, C], the same on every rank (sequence parallel: [N/tp, C], this rank's rows).
  Tensor forward(StepContext& ctx, const Tensor& ids) override;
  // Accumulates the table's gradient; returns an undefined tensor (ids have no gradient).
  Tensor backward(StepContext& ctx, const Tensor& dout) override;

  Parameter& weight() { return weight_; }
  std::int64_t first_id() const { return first_id_; }
  // Looking up `rows` ids on one of `tp` ranks: keeps the ids.
  static ModuleCost cost(std::int64_t vocab, std::int64_t hidden, std::int64_t rows, std::int64_t tp,
                         bool sequence_parallel);

 private:
  TpGroup tp_;
  bool sequence_parallel_;
  Parameter weight_;
  std::int64_t first_id_;
};

}  // namespace tessera
