// Fused softmax + cross-entropy over a block of rows of logits.
//   logits [N,V] (overwritten with the gradient when compute_grad), targets [N] int32 in [0,V),
//   mask [N] or null (all ones), losses [N].
// losses[n] = logsumexp(logits[n]) − logits[n, targets[n]]   (not masked)
// grad:      logits[n] = grad_scale·mask[n]·(softmax(logits[n]) − onehot(targets[n]))
// Per row: one pass for the max, one that computes exp and the sum (storing exp in place when the
// gradient is wanted), one that scales it. A row of the 50k vocabulary stays in L2 throughout.
#pragma once
#include <cstdint>

namespace tessera::cpu {

void softmax_cross_entropy(float* logits, const std::int32_t* targets, const float* mask,
                           float* losses, std::int64_t N, std::int64_t V, bool compute_grad,
                           float grad_scale);

// Vocab-parallel cross-entropy on one rank's shard of the vocabulary, ids [first_id, first_id+V).
// Pass 1, per row: row_max[n] = max_j logits[n,j], sum_exp[n] = Σ_j exp(logits[n,j] − row_max[n])
// (in double, stored as float), target_logit[n] = logits[n, targets[n] − first_id] when the target
// is in the shard, else 0; with keep_exp, logits[n,j] becomes exp(logits[n,j] − row_max[n]).
void cross_entropy_shard_stats(float* logits, const std::int32_t* targets, std::int64_t first_id,
                               float* row_max, float* sum_exp, float* target_logit, std::int64_t N,
                               std::int64_t V, bool keep_exp);
// Pass 2, after the shards' stats are combined (global max M[n], global sum S[n] of exp(x − M)):
// exp_logits (pass 1's kept exp) becomes grad_scale·mask[n]·(exp(x − M)/S − onehot(target)), by
// one rescale per row: exp(x − M) = exp(x − row_max)·exp(row_max − M). mask may be null.
void cross_entropy_shard_grad(float* exp_logits, const std::int32_t* targets, std::int64_t first_id,
                              const float* mask, const float* row_max, const float* global_max,
                              const float* global_sum, float grad_scale, std::int64_t N,
                              std::int64_t V);

// Between the passes: the shard's Σ exp(x − row_max) rescaled to the global max M,
// sum_at_global[n] = sum_exp[n]·exp(row_max[n] − M[n]) (in double), to be summed over the shards.
void cross_entropy_shard_rescale(const float* row_max, const float* sum_exp, const float* global_max,
                                 float* sum_at_global, std::int64_t N);
// losses[n] = M[n] + log(S[n]) − target_logit[n] (S, target_logit already summed over the shards).
void cross_entropy_shard_loss(const float* global_max, const float* global_sum, const float* target_logit,
                              float* losses, std::int64_t N);
}  // namespace tessera::cpu
