// VocabParallelEmbedding: the token-embedding table [V, C] split by vocabulary rows across the tp
// group (tp_split_dim 0). Rank r holds ids [first_id, first_id + V/tp); an id it does not hold gives
// a zero row, and the all-reduce over tp (exact: one non-zero term per row) yields table[id] on
// every rank. Backward needs no communication: each rank adds into the rows it holds. The table
// doubles as a tied LM head (weight(), first_id()). With tp = 1 this is a plain embedding.
#pragma once
#include "tessera/nn/module.hpp"
#include "tessera/nn/tensor_parallel_region.hpp"

namespace tessera {

class VocabParallelEmbedding : public Module {
 public:
  // `vocab` is the full (padded) vocabulary; tp must divide it.
  VocabParallelEmbedding(std::string name, std::int64_t vocab, std::int64_t hidden, float init_std,
                         std::uint64_t seed, TpGroup tp);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // ids i32 [N] → [N, C], the same on every rank.
  Tensor forward(StepContext& ctx, const Tensor& ids) override;
  // Accumulates the table's gradient; returns an undefined tensor (ids have no gradient).
  Tensor backward(StepContext& ctx, const Tensor& dout) override;

  Parameter& weight() { return weight_; }
  std::int64_t first_id() const { return first_id_; }

 private:
  TpGroup tp_;
  Parameter weight_;
  std::int64_t first_id_;
};

}  // namespace tessera
