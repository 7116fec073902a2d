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

}  // namespace tessera::cpu
