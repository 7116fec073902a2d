// A Generator for ranks that generate in lockstep (a tensor-parallel `tessera serve` or `generate`):
// every rank runs the same forwards, and the logits each returns are rank 0's of `group`.
//
// The model already gathers the vocabulary shards over tp, so every rank has the whole logits, but
// they come from all-reduced hidden states, and MPI does not promise bitwise-equal sums on every
// rank. Sampling must pick the same token on every rank (it is the next forward's input there), so
// after every forward rank 0's [B, vocab] logits are broadcast over the group: with them and the
// same seed, every rank samples the same tokens, computes the same logprobs and stops at the same
// step. Costs one broadcast of B·vocab floats per token.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/generation.hpp"
#include "tessera/parallel/communicator.hpp"

namespace tessera::app {

class RankZeroLogits final : public Generator {
 public:
  // `inner` and `group` must outlive this Generator and the sessions it starts.
  RankZeroLogits(Generator& inner, Communicator& group) : inner_(inner), group_(group) {}

  Tensor next_token_logits(const Tensor& tokens) override;
  SessionStart start_session(const std::vector<std::vector<std::int32_t>>& prompts,
                             std::int64_t capacity = 0) override;

 private:
  Generator& inner_;
  Communicator& group_;
};

// Replaces `logits` by rank 0's of `group` (same shape on every rank). Collective.
Tensor rank_zero_logits(Tensor logits, Communicator& group);

}  // namespace tessera::app
