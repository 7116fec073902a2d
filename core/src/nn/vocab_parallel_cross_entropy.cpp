#include "tessera/nn/vocab_parallel_cross_entropy.hpp"

#include "tessera/ops.hpp"

namespace tessera {

void vocab_parallel_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                  bool compute_grad, float grad_scale, std::int64_t first_id, const TpGroup& tp) {
  if (tp_size(tp) == 1) {
    ops::softmax_cross_entropy(logits, targets, mask, losses, compute_grad, grad_scale);
    return;
  }
  const std::int64_t N = losses.numel();
  Tensor row_max = losses.new_empty({N}), sum_exp = losses.new_empty({N});
  // sums = [Σ exp(x − M) | target logit] so that one all-reduce carries both.
  Tensor sums = losses.new_empty({2 * N});
  Tensor global_sum = sums.rows(0, N), target_logit = sums.rows(N, 2 * N);
  ops::cross_entropy_shard_stats(logits, targets, first_id, row_max, sum_exp, target_logit, compute_grad);
  Tensor global_max = losses.new_empty({N});
  ops::copy(row_max, global_max);
  tp->all_reduce(global_max, ReduceOp::max);
  ops::cross_entropy_shard_rescale(row_max, sum_exp, global_max, global_sum);
  tp->all_reduce(sums);
  ops::cross_entropy_shard_loss(global_max, global_sum, target_logit, losses);
  if (compute_grad)
    ops::cross_entropy_shard_grad(logits, targets, first_id, mask, row_max, global_max, global_sum, grad_scale);
}

}  // namespace tessera
