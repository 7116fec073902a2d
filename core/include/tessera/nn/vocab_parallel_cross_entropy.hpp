// Softmax cross-entropy over logits split by vocabulary across the tp group (Megatron-LM's
// vocab-parallel cross-entropy): no rank ever holds a whole row of logits. Each rank computes its
// shard's row max, Σ exp and target logit (ops::cross_entropy_shard_stats); two small all-reduces
// over tp (max, then the rescaled sums and target logits together) give every rank the exact loss
// of every row, and the shard turns in place into its part of the gradient. With tp = 1 (or a null
// group) it is the fused ops::softmax_cross_entropy, bit for bit.
#pragma once
#include <cstdint>

#include "tessera/nn/tensor_parallel_region.hpp"
#include "tessera/plan_count.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

// logits [N, V/tp] hold vocabulary ids [first_id, first_id + V/tp); targets i32 [N]; mask f32 [N] or
// undefined; losses f32 [N] (the same on every rank). With compute_grad, logits is overwritten with
// grad_scale·mask·(softmax − onehot) on this rank's columns.
void vocab_parallel_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                  bool compute_grad, float grad_scale, std::int64_t first_id, const TpGroup& tp);
// The all-reduces of one call over `rows` rows on one of `tp` ranks (for `tessera plan`): none with
// tp = 1, else the row max [rows] and [Σexp | target logit] [2·rows].
inline CollectiveCount vocab_parallel_cross_entropy_collectives(std::int64_t rows, std::int64_t tp) {
  return tp > 1 ? CollectiveCount{2, plan_mul(3, rows)} : CollectiveCount{};
}

}  // namespace tessera
