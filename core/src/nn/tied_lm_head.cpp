#include "tessera/nn/tied_lm_head.hpp"

#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// One process with ignored targets: the vocab-parallel path without its all-reduces, which reads a
// target only where it falls in the vocabulary (the plain softmax_cross_entropy would index it).
void cross_entropy_ignoring(Tensor& logits, const Tensor& targets, const Tensor& mask, Tensor& losses, bool grad,
                            float grad_scale) {
  const std::int64_t N = losses.numel();
  Tensor row_max = losses.new_empty({N}), sum_exp = losses.new_empty({N}), target_logit = losses.new_empty({N});
  ops::cross_entropy_shard_stats(logits, targets, 0, row_max, sum_exp, target_logit, grad);
  ops::cross_entropy_shard_loss(row_max, sum_exp, target_logit, losses);
  if (grad) ops::cross_entropy_shard_grad(logits, targets, 0, mask, row_max, row_max, sum_exp, grad_scale);
}

}  // namespace

TiedLmHeadOutput tied_lm_head_loss(const TiedLmHead& head, const Tensor& h, const Tensor& labels, const Tensor& mask,
                                   float grad_scale, bool training) {
  const Tensor& table = *head.table;
  const std::int64_t N = h.size(0), C = h.size(1), V = table.size(0);
  TiedLmHeadOutput out;
  out.losses = h.new_empty({N}, DType::f32);
  if (training) out.dh = h.new_empty({N, C});
  const std::int64_t chunk = head_chunk_rows(V, head.chunk_elements);
  Tensor logits_buffer = h.new_empty({std::min(chunk, N), V}, DType::f32);
  const bool low_precision = h.dtype() != DType::f32;
  Tensor grad_buffer = low_precision && training ? h.new_empty({std::min(chunk, N), V}) : Tensor();
  Tensor ones = head.bias && training ? Tensor::full({1, std::min(chunk, N)}, 1.0f, h.device()) : Tensor();
  for (std::int64_t r0 = 0; r0 < N; r0 += chunk) {
    const std::int64_t r1 = std::min(N, r0 + chunk);
    Tensor hc = h.rows(r0, r1);
    Tensor logits = logits_buffer.rows(0, r1 - r0);
    Tensor chunk_losses = out.losses.rows(r0, r1);
    ops::matmul(hc, false, table, true, logits);  // [n,C]·[V,C]ᵀ
    if (head.bias) ops::add_bias(logits, *head.bias);
    if (head.ignored_targets && tp_size(head.tp) == 1)
      cross_entropy_ignoring(logits, labels.rows(r0, r1), mask.rows(r0, r1), chunk_losses, training, grad_scale);
    else
      vocab_parallel_cross_entropy(logits, labels.rows(r0, r1), mask.rows(r0, r1), chunk_losses, training, grad_scale,
                                   head.first_id, head.tp);
    if (!training) continue;
    if (head.bias) {  // db += Σ over the chunk's rows of dlogits, as a [1,n]·[n,V] product
      Tensor db = head.bias_grad->reshape({1, V});
      Tensor row_ones = ones.reshape({ones.numel()}).rows(0, r1 - r0).reshape({1, r1 - r0});
      ops::matmul(row_ones, false, logits, false, db, 1.0f, 1.0f);
    }
    Tensor dhc = out.dh.rows(r0, r1);
    Tensor dlogits = logits;
    if (low_precision) {
      dlogits = grad_buffer.rows(0, r1 - r0);
      ops::cast(logits, dlogits);
    }
    ops::matmul(dlogits, false, table, false, dhc);                      // [n,V]·[V,C]
    ops::matmul(dlogits, true, hc, false, *head.table_grad, 1.0f, 1.0f);  // += [n,V]ᵀ·[n,C], in f32
  }
  return out;
}

}  // namespace tessera
