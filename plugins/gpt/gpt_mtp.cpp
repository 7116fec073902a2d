#include "gpt_mtp.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/nn/transformer_plan.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/ops.hpp"

namespace tessera::gpt {

namespace {

// eh_proj: Megatron-Core's ColumnParallelLinear(2h, h, bias=False, gather_output=False) followed by
// gather_from_tensor_model_parallel_region — here the linear's own gather_output.
ColumnParallelOptions projection_options(std::int64_t hidden, float init_std, bool sequence_parallel) {
  ColumnParallelOptions p;
  p.in = 2 * hidden;
  p.out = hidden;
  p.bias = false;
  p.init_std = init_std;
  p.gather_output = true;
  p.sequence_parallel = sequence_parallel;
  return p;
}

const AttentionOptions& attention_of(const TransformerBlockOptions& b) { return b.layer.attention; }

// Norms applied to token shards get their gradients from this rank's rows: summed over tp.
void mark_token_shard(Module& norm) {
  std::vector<Parameter*> params;
  norm.collect_parameters(params);
  for (Parameter* p : params) p->reduce_grad_over_tp = true;
}

}  // namespace

std::string mtp_loss_name(std::int64_t depth) { return fmt::format("mtp_{} loss", depth + 1); }

std::string describe_mtp_depths(const TransformerOptions& o) {
  const std::int64_t D = o.mtp_num_layers;
  return fmt::format("{} {}{}", D, D == 1 ? "depth" : "depths", o.mtp_use_repeated_layer && D > 1 ? " sharing one layer" : "");
}

TransformerBlockOptions mtp_block_options(TransformerBlockOptions b, std::int64_t num_layers, std::int64_t depth) {
  // Where layers differ, the depth's is the model's last layer.
  const std::int64_t last = num_layers - 1;
  if (b.mlp_of_layer) b.mlp_of_layer = [f = b.mlp_of_layer, last](std::int64_t) { return f(last); };
  if (b.window_of_layer) b.window_of_layer = [f = b.window_of_layer, last](std::int64_t) { return f(last); };
  if (b.rope_of_layer) b.rope_of_layer = [f = b.rope_of_layer, last](std::int64_t) { return f(last); };
  b.first_layer = num_layers + depth;
  b.num_layers = 1;
  b.layer_name = [num_layers](std::int64_t layer) { return fmt::format("mtp.layers.{}", layer - num_layers); };
  b.final_norm = fmt::format("mtp.layers.{}.final_layernorm", depth);
  return b;
}

MtpDepth::MtpDepth(const TransformerOptions& o, std::int64_t depth, const TransformerBlockOptions& block)
    : hidden_(o.hidden_size),
      tp_(attention_of(block).tp),
      sequence_parallel_(attention_of(block).sequence_parallel && tp_size(tp_) > 1),
      enorm_(block.layer.spec.norm.build(fmt::format("mtp.layers.{}.enorm", depth), o.hidden_size,
                                         block.layer.layernorm_epsilon)),
      hnorm_(block.layer.spec.norm.build(fmt::format("mtp.layers.{}.hnorm", depth), o.hidden_size,
                                         block.layer.layernorm_epsilon)),
      eh_proj_(fmt::format("mtp.layers.{}.eh_proj", depth),
               projection_options(o.hidden_size, o.init_method_std, sequence_parallel_), o.seed, tp_),
      block_(block, o.seed) {
  if (sequence_parallel_) {
    mark_token_shard(*enorm_);
    mark_token_shard(*hnorm_);
  }
}

void MtpDepth::collect_parameters(std::vector<Parameter*>& out) {
  enorm_->collect_parameters(out);
  hnorm_->collect_parameters(out);
  eh_proj_.collect_parameters(out);
  block_.collect_parameters(out);
}

bool MtpDepth::sequence_parallel(const StepContext& ctx) const {
  return sequence_parallel_applies(sequence_parallel_, tp_, ctx);
}

Tensor MtpDepth::forward(StepContext& ctx, const Tensor& e, const Tensor& h, const AttentionInputs& in) {
  const std::int64_t C = hidden_, R = e.numel() / C;
  TESSERA_CHECK_SHAPE(e.shape() == h.shape() && e.size(-1) == C,
                      "multi-token prediction: embeddings {} and hidden states {} must both be [..., {}]", e.str(),
                      h.str(), C);
  Tensor a = enorm_->forward(ctx, e.reshape({R, C}));
  Tensor b = hnorm_->forward(ctx, h.reshape({R, C}));
  Tensor joined = a.new_empty({R, 2 * C});  // [enorm(e) | hnorm(h)], Megatron-Core's order
  ops::copy_2d(a, 0, C, joined, 0, 2 * C, R, C);
  ops::copy_2d(b, 0, C, joined, C, 2 * C, R, C);
  Tensor z = eh_proj_.forward(ctx, joined);  // every token row on every rank
  if (sequence_parallel(ctx)) {              // back to this rank's rows
    const SequenceShard rows = sequence_shard(z.size(0), tp_);
    Tensor mine = z.new_empty({rows.rows, C});
    ops::copy_2d(z, rows.first * C, C, mine, 0, C, rows.rows, C);
    z = mine;
  }
  return block_.forward(ctx, z.reshape(e.shape()), in);
}

MtpDepth::Grads MtpDepth::backward(StepContext& ctx, const Tensor& dy) {
  const std::int64_t C = hidden_;
  Tensor dz = block_.backward(ctx, dy).dx;
  const Shape shape = dz.shape();
  const std::int64_t R = dz.numel() / C;
  // Keeping this rank's rows has the all-gather of every rank's row gradients as its backward.
  Tensor dfull = sequence_parallel(ctx) ? gather_from_sequence_parallel_forward(dz.reshape({R, C}), tp_)
                                        : dz.reshape({R, C});
  Tensor djoined = eh_proj_.backward(ctx, dfull);  // [R, 2C]: this rank's rows under sequence parallelism
  Tensor da = djoined.new_empty({R, C}), db = djoined.new_empty({R, C});
  ops::copy_2d(djoined, 0, 2 * C, da, 0, C, R, C);
  ops::copy_2d(djoined, C, 2 * C, db, 0, C, R, C);
  return {enorm_->backward(ctx, da).reshape(shape), hnorm_->backward(ctx, db).reshape(shape)};
}

ModuleCost MtpDepth::cost(const TransformerOptions& o, const TransformerBlockOptions& block, const CostShape& s) {
  const bool sp = attention_of(block).sequence_parallel && s.tp > 1;
  const std::int64_t h = o.hidden_size, rows = s.held_rows(sp);
  ModuleCost c;
  const ModuleCost norm = block.layer.spec.norm.cost(h, rows);
  c += norm.times(2);  // enorm, hnorm
  if (sp) c.tp_replicated_grads += {2 * norm.parameter_tensors, plan_mul(2, norm.parameters)};
  c += ColumnParallelLinear::cost(projection_options(h, o.init_method_std, sp), s.tokens(), s.tp);
  // Keeping this rank's rows of the projection: in backward every rank's row gradients, gathered.
  if (sp) c.backward.all_gather += {1, plan_mul(s.tokens(), h)};
  c += TransformerBlock::cost(block, s);
  return c;
}

void add_mtp_chunk_cost(ModelChunkCost& c, const TransformerOptions& o, const TransformerBlockOptions& last_layer,
                        bool first_virtual_stage, bool last_virtual_stage, std::int64_t b, std::int64_t tp,
                        bool sequence_parallel) {
  const std::int64_t D = o.mtp_num_layers;
  if (D == 0) return;
  const std::int64_t h = o.hidden_size, T = o.seq_length, N = b * T, Vt = o.padded_vocab_size / tp;
  const bool sp = sequence_parallel && tp > 1;
  const std::int64_t Ns = sp ? N / tp : N;
  // With pp > 1 the last stage keeps copies of the word embedding (the tied head's already) and of
  // the position table, their gradients summed with the first stage's over the embedding group.
  const bool copies = first_virtual_stage != last_virtual_stage;
  const std::int64_t word = plan_mul(Vt, h);
  const std::int64_t positions = o.learned_positions ? plan_mul(o.max_position_embeddings, h) : 0;
  if (copies) {
    if (o.untie_embeddings_and_output_weights) c.tied_embedding_grads += {1, word};
    if (positions > 0) c.tied_embedding_grads += {1, positions};
  }
  if (!last_virtual_stage) return;
  if (copies) {
    const std::int64_t tables = (o.untie_embeddings_and_output_weights ? 1 : 0) + (positions > 0 ? 1 : 0);
    c.parameters = plan_add(c.parameters, plan_add(o.untie_embeddings_and_output_weights ? word : 0, positions));
    c.parameter_tensors += tables;
    if (sp && positions > 0) c.tp_replicated_grads += {1, positions};
  }
  c.contents += fmt::format(", multi-token prediction ({})", describe_mtp_depths(o));
  for (std::int64_t d = 0; d < D; ++d) {
    c += VocabParallelEmbedding::cost(o.padded_vocab_size, h, N, tp, sp).without_parameters();  // the model's table
    if (o.learned_positions) c.activation_elements = plan_add(c.activation_elements, Ns);  // position ids
    const ModuleCost depth = MtpDepth::cost(o, mtp_block_options(last_layer, o.num_layers, d), CostShape{b, T, 0, tp});
    c += d < o.mtp_physical_layers() ? depth : depth.without_parameters();  // the shared layer again
    add_lm_head_cost(c, N, h, Vt, tp, sp, /*gradient_all_reduced=*/false);
  }
}

}  // namespace tessera::gpt
