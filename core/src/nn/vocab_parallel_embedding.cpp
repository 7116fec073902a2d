#include "tessera/nn/vocab_parallel_embedding.hpp"

#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"

namespace tessera {

VocabParallelEmbedding::VocabParallelEmbedding(std::string name, std::int64_t vocab, std::int64_t hidden,
                                               float init_std, std::uint64_t seed, TpGroup tp,
                                               bool sequence_parallel)
    : tp_(std::move(tp)),
      sequence_parallel_(sequence_parallel),
      weight_(std::move(name), {tp_shard_size(vocab, tp_, "padded vocabulary size"), hidden}),
      first_id_(tp_rank(tp_) * weight_.value.size(0)) {
  init_normal(weight_.value, init_std, seed, weight_.name, first_id_ * hidden);
  weight_.tp_split_dim = 0;
  weight_.embedding_or_output = true;  // the word embeddings ([optimizer] decoupled_lr)
}

ModuleCost VocabParallelEmbedding::cost(std::int64_t vocab, std::int64_t hidden, std::int64_t rows, std::int64_t tp,
                                        bool sequence_parallel) {
  ModuleCost c;
  c.parameters = plan_mul(vocab / tp, hidden);
  c.parameter_tensors = 1;
  c.saved_elements = rows;
  if (tp == 1) return c;
  const CollectiveCount output{1, plan_mul(rows, hidden)};
  if (sequence_parallel) {
    c.forward.reduce_scatter += output;
    c.backward.all_gather += output;  // every vocabulary shard needs every row's gradient
  } else {
    c.forward.all_reduce += output;
  }
  return c;
}

void VocabParallelEmbedding::collect_parameters(std::vector<Parameter*>& out) { out.push_back(&weight_); }

Tensor VocabParallelEmbedding::forward(StepContext& ctx, const Tensor& ids) {
  Tensor out = weight_.weight().new_empty({ids.numel(), weight_.value.size(1)});
  if (tp_size(tp_) == 1) {
    ops::embedding_forward(ids, weight_.weight(), out);
  } else {
    ops::embedding_shard_forward(ids, weight_.weight(), first_id_, out);
    if (sequence_parallel_applies(sequence_parallel_, tp_, ctx))
      out = reduce_scatter_to_sequence_parallel_forward(out, tp_);
    else
      reduce_from_tp_forward(out, tp_);
  }
  if (ctx.training) ctx.store().save(this, SavedTensor{ids});
  return out;
}

Tensor VocabParallelEmbedding::backward(StepContext& ctx, const Tensor& dout) {
  Tensor ids = ctx.store().take<SavedTensor>(this).x;
  if (tp_size(tp_) == 1)
    ops::embedding_backward(ids, dout, weight_.grad);
  else if (sequence_parallel_applies(sequence_parallel_, tp_, ctx))
    ops::embedding_shard_backward(ids, reduce_scatter_to_sequence_parallel_backward(dout, tp_), first_id_, weight_.grad);
  else
    ops::embedding_shard_backward(ids, reduce_from_tp_backward(dout), first_id_, weight_.grad);
  return Tensor();
}

}  // namespace tessera
