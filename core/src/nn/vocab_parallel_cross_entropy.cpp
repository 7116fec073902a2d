#include "tessera/nn/vocab_parallel_cross_entropy.hpp"

#include <cmath>

#include "tessera/ops.hpp"

namespace tessera {

void vocab_parallel_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses,
                                  bool compute_grad, float grad_scale, std::int64_t first_id, const TpGroup& tp) {
  if (tp_size(tp) == 1) {
    ops::softmax_cross_entropy(logits, targets, mask, losses, compute_grad, grad_scale);
    return;
  }
  const std::int64_t N = losses.numel();
  Tensor row_max = Tensor::empty({N}), sum_exp = Tensor::empty({N});
  // sums = [Σ exp(x − M) | target logit] so that one all-reduce carries both.
  Tensor sums = Tensor::empty({2 * N});
  Tensor target_logit = sums.rows(N, 2 * N);
  ops::cross_entropy_shard_stats(logits, targets, first_id, row_max, sum_exp, target_logit, compute_grad);
  Tensor global_max = Tensor::empty({N});
  ops::copy(row_max, global_max);
  tp->all_reduce(global_max, ReduceOp::max);
  const float* m = row_max.data<float>();
  const float* gm = global_max.data<float>();
  const float* s = sum_exp.data<float>();
  float* gs = sums.data<float>();
  for (std::int64_t i = 0; i < N; ++i) gs[i] = static_cast<float>(s[i] * std::exp(static_cast<double>(m[i]) - gm[i]));
  tp->all_reduce(sums);
  const float* tl = sums.data<float>() + N;
  float* l = losses.data<float>();
  for (std::int64_t i = 0; i < N; ++i)
    l[i] = static_cast<float>(static_cast<double>(gm[i]) + std::log(static_cast<double>(gs[i])) - tl[i]);
  if (compute_grad)
    ops::cross_entropy_shard_grad(logits, targets, first_id, mask, row_max, global_max, sums.rows(0, N), grad_scale);
}

}  // namespace tessera
