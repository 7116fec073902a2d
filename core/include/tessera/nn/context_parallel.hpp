// Context parallelism (Megatron-Core's context_parallel_size, cp; its cp_comm_type "all_gather").
//
// The cp ranks of a group hold the same micro batches and split every sequence between them: of
// its T tokens, cut into 2·cp chunks of T/(2·cp), rank r holds chunks r and 2·cp − 1 − r, one after
// the other (Megatron-Core's load balancing for causal attention: every rank gets an early and a
// late chunk, so the same share of the causal score matrix). A rank's activations are therefore
// [B, T/cp, C] — everything token-wise (embeddings, norms, MLPs, dropout, the LM head) runs on them
// alone; only causal self-attention needs the other tokens: each layer all-gathers the keys and
// values over cp (after rotary positions) and attends its queries, placed at their positions in the
// sequence (ops::AttentionMask::query_position), to all T keys; backward reduce-scatters the keys'
// and values' gradient back to the ranks that own them.
//
// The model turns it on per step (StepContext::context_parallel): training and evaluation steps run
// on the rank's chunks, generation on whole sequences. Positions (learned tables, rotary angles,
// dropout counters, attention dropout) are those of the one-process run, so every cp layout draws
// the one-process masks and reproduces its losses to float tolerance.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/nn/step_context.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/tensor.hpp"

namespace tessera {

using CpGroup = std::shared_ptr<Communicator>;  // null: no context parallelism

// The cp group a step runs with: ctx.context_parallel when it has more than one rank, else null.
inline const CpGroup& active_context_parallel(const StepContext& ctx) {
  static const CpGroup none;
  return ctx.context_parallel && ctx.context_parallel->size() > 1 ? ctx.context_parallel : none;
}

// The positions in the whole sequence of rank `rank`'s T/cp tokens (T: the whole length, a multiple
// of 2·cp): chunk rank, then chunk 2·cp − 1 − rank.
std::vector<std::int32_t> cp_token_positions(std::int64_t T, int cp, int rank);

// This rank's tokens of x [B, T, ...] (two or more dims): [B, T/cp, ...]. Any dtype.
Tensor cp_take_chunks(const Tensor& x, int cp, int rank);

// Every cp rank's [B, T/cp, W] → the whole sequences [B, T, W] in sequence order (an all-gather).
Tensor cp_gather_sequence(const Tensor& local, Communicator& cp);
// The gather's backward: whole-sequence gradients [B, T, W] from every rank → this rank's tokens
// [B, T/cp, W], summed over the cp ranks (a reduce-scatter).
Tensor cp_reduce_scatter_sequence(const Tensor& whole, Communicator& cp);

// Where a rank's token rows sit in the one-process [B·T, C] activation, for counter-based dropout
// masks (nn/dropout.hpp): the rank holds rows [first, first + n) of its own [B·T/cp] token rows
// (first > 0 for a sequence-parallel shard), and its row i of sequence b, at position t of the
// sequence (cp_token_positions), is row b·T + t of the one-process activation.
struct TokenRows {
  std::int64_t first = 0;
  std::int64_t local_length = 0;  // T/cp, the rank's tokens per sequence (unused with cp = 1)
  int cp = 1, cp_rank = 0;
  // Consecutive rows that stay consecutive in the one-process activation: rows [row, row + count)
  // of the tensor (counted from first) are one-process rows [global, global + count).
  struct Run {
    std::int64_t row, count, global;
  };
  std::vector<Run> runs(std::int64_t n) const;
  // The rows of a step: the shard starting at `first` of the rank's rows, under ctx's cp group.
  static TokenRows of(const StepContext& ctx, std::int64_t first);
};

}  // namespace tessera
