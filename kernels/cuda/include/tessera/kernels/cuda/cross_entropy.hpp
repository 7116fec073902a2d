// Row softmax and the softmax cross-entropy losses on the GPU, the contracts of
// kernels/cpu/cross_entropy.hpp and softmax.hpp. Everything f32: logits [N,V], targets [N] i32,
// mask [N] (null: all ones), per-row statistics and losses [N].
//
// One block per row. A row's max and Σ exp(x − max) come from one pass (a running max per thread,
// its sum rescaled when the max grows), the sum accumulated in double as the CPU does — 50k terms
// in float would drift by ~1e-4 — and reduced across the block in a fixed order, so reruns give the
// same bits. A second pass writes exp, the gradient or the probabilities, recomputing each exp
// rather than storing it between passes. No launcher needs a workspace.
#pragma once
#include <cstdint>

#include "tessera/kernels/cuda/float_type.hpp"

namespace tessera::cuda {

// losses[n] = max + log Σ exp(x − max) − logits[n, targets[n]] (not masked); with compute_grad,
// logits[n] becomes grad_scale·mask[n]·(softmax − onehot(targets[n])). A target outside [0, V) —
// bad data the host could not check — gives a NaN loss and no onehot term, and is never read.
void softmax_cross_entropy(float* logits, const std::int32_t* targets, const float* mask, float* losses,
                           std::int64_t N, std::int64_t V, bool compute_grad, float grad_scale, cudaStream_t stream);

// The vocab-parallel loss on a shard of the vocabulary, ids [first_id, first_id + V).
// Pass 1: row_max, sum_exp = Σ exp(x − row_max), target_logit = the target's logit if in the
// shard, else 0; with keep_exp, logits becomes exp(logits − row_max).
void cross_entropy_shard_stats(float* logits, const std::int32_t* targets, std::int64_t first_id, float* row_max,
                               float* sum_exp, float* target_logit, std::int64_t N, std::int64_t V, bool keep_exp,
                               cudaStream_t stream);
// Pass 2 on the kept exp: exp_logits becomes grad_scale·mask·(exp(x − M)/S − onehot), one rescale
// per row by exp(row_max − M)/S (M, S: the global max and sum).
void cross_entropy_shard_grad(float* exp_logits, const std::int32_t* targets, std::int64_t first_id, const float* mask,
                              const float* row_max, const float* global_max, const float* global_sum,
                              float grad_scale, std::int64_t N, std::int64_t V, cudaStream_t stream);
// sum_at_global = sum_exp·exp(row_max − global_max), in double.
void cross_entropy_shard_rescale(const float* row_max, const float* sum_exp, const float* global_max,
                                 float* sum_at_global, std::int64_t N, cudaStream_t stream);
// losses = global_max + log(global_sum) − target_logit, in double.
void cross_entropy_shard_loss(const float* global_max, const float* global_sum, const float* target_logit,
                              float* losses, std::int64_t N, cudaStream_t stream);

// out[n] = softmax(x[n]) over the last dim C; out may alias x.
void softmax(const float* x, float* out, std::int64_t N, std::int64_t C, cudaStream_t stream);

}  // namespace tessera::cuda
