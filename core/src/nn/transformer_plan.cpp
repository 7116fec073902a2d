// What GPT-shaped models (transformer_plan.hpp) build and save on one rank, from [model] and the
// layout alone. The layers, their recompute and the final norm are the TransformerBlock the model
// builds (the spec's block options), and their figures are the block's own (TransformerBlock::cost,
// which sums its layers' modules: nn/module_cost.hpp). What is the model's own is counted here,
// next to the code it describes (plugins/gpt/gpt_model.cpp, plugins/bert/bert_model.cpp and
// bert_heads.cpp):
//   first virtual stage  the vocabulary-parallel token embedding (VocabParallelEmbedding::cost: the
//                        table shard V_t·h, the ids N, its all-reduce or reduce-scatter), the position
//                        embedding P·h and its position ids (learned_absolute only; Ns rows: this
//                        rank's token rows); with
//                        token types (BERT) their table and ids (Ns); under sequence parallelism
//                        the position and token-type tables' gradients are summed over tp
//   last virtual stage   the fused LM head: the tied table (a copy V_t·h when the stage is not also
//                        the first; untied: the output layer's V_t·h on every last stage), the input gradient it keeps for backward (Ns·h), its all-reduce
//                        (GPT under sequence parallelism: all-gather of the input and reduce-scatter
//                        of the gradient, both during forward; BERT: all-gather and all-reduce),
//                        per chunk of rows the vocabulary-parallel cross-entropy's statistics, and
//                        the spec's heads' parameters
// tests/model/test_model_plan.cpp builds the models for each stage and tensor-parallel rank and
// requires exact equality; tests/nn/test_transformer_block.cpp checks the block's figures for every
// layer spec.
#include "tessera/nn/transformer_plan.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/nn/tied_lm_head.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/parallel/pipeline_layers.hpp"

namespace tessera {

// The largest counts chunk_cost forms are a few times these (weights, a layer's saved activations,
// the LM head); past 2^58 some sum or product may not fit 64 bits.
void check_countable(const TransformerOptions& o, std::int64_t micro_batch, const std::string& model) {
  const long double h = o.hidden_size, F = o.ffn_hidden_size, T = o.seq_length, b = micro_batch;
  const long double V = o.padded_vocab_size, H = o.num_attention_heads, L = o.num_layers;
  const long double E = o.moe.router.experts, k = o.moe.router.topk, Fm = o.moe.ffn_hidden;  // E = 0: dense
  const long double per_layer = 4 * h * h + 3 * F * h + b * T * (10 * h + 2 * F) + b * H * T +
                                E * (3 * Fm * h + h) + b * T * k * (3 * Fm + 2 * h + 2);
  const long double total = L * per_layer + V * h * (2 + b * T) + o.max_position_embeddings * h;
  if (total > static_cast<long double>(std::int64_t{1} << 58))
    throw ConfigError(fmt::format(
        "{}: model.num_layers {}, hidden_size {}, ffn_hidden_size {}, seq_length {}, num_attention_heads {} with "
        "micro_batch_size {} need about {:.3g} elements, more than can be counted in 64 bits",
        model, o.num_layers, o.hidden_size, o.ffn_hidden_size, o.seq_length, o.num_attention_heads, micro_batch,
        static_cast<double>(total)));
}

ModelChunkCost transformer_chunk_cost(const TransformerOptions& o, const ParallelSizes& sizes,
                                      const TransformerPlanSpec& spec, const ParallelLayout& layout, int chunk,
                                      std::int64_t b) {
  if (layout.tp() != sizes.tp || layout.pp() != sizes.pp || layout.vpp() != sizes.vpp)
    throw Error(fmt::format("{} plan: layout {} is not the one the planner was made for (tp {}, pp {}, vpp {})",
                            spec.model, layout.str(), sizes.tp, sizes.pp, sizes.vpp));
  if (chunk < 0 || chunk >= layout.vpp())
    throw Error(fmt::format("{} plan: chunk {} outside [0, {})", spec.model, chunk, layout.vpp()));
  if (b < 1) throw Error(fmt::format("{} plan: micro batch size {} < 1", spec.model, b));
  check_countable(o, b, spec.model);
  const std::int64_t t = layout.tp(), p = layout.pp(), v = layout.vpp();
  const std::int64_t virtual_stage = chunk * p + layout.pp_rank(), virtual_stages = p * v;
  const LayerRange layers = chunk_layers(o.num_layers, sizes, layout.pp_rank(), chunk);
  const std::int64_t per = layers.count, first_layer = layers.first;
  const bool first = virtual_stage == 0, last = virtual_stage == virtual_stages - 1;

  // Context parallelism: a rank holds T/cp tokens of every sequence.
  const std::int64_t h = o.hidden_size, T = o.seq_length / sizes.cp, N = b * T, Vt = o.padded_vocab_size / t;
  const bool sp = sizes.sequence_parallel && t > 1;
  const std::int64_t Ns = sp ? N / t : N;  // token rows held between tensor-parallel regions

  ModelChunkCost c;
  c.contents = layers_text(first_layer, per);
  if (first) c.contents += ", embeddings";
  if (last)
    c.contents += (o.untie_embeddings_and_output_weights ? ", final norm, output layer"
                   : first                               ? ", final norm, LM head"
                                                         : ", final norm, LM head (tied copy)") +
                  spec.heads_contents;

  const CostShape shape{b, T, 0, t};
  c += TransformerBlock::cost(spec.block(sp, first_layer, per, last), shape);
  if (first) {
    c += VocabParallelEmbedding::cost(o.padded_vocab_size, h, N, t, sp);
    // The position table and its ids (only with learned_absolute); with token types their table and ids (this
    // rank's rows).
    const std::int64_t positions = o.learned_positions ? o.max_position_embeddings : 0;
    const std::int64_t tables = (spec.token_types > 0 ? 1 : 0) + (o.learned_positions ? 1 : 0);
    const std::int64_t table_elements = plan_mul(positions + spec.token_types, h);
    c.parameters = plan_add(c.parameters, table_elements);
    c.parameter_tensors += tables;
    c.activation_elements = plan_add(c.activation_elements, plan_mul(tables, Ns));
    if (sp && tables > 0) c.tp_replicated_grads += {tables, table_elements};
  }
  if (last) {
    if (o.untie_embeddings_and_output_weights || !first) {  // the untied output layer, or the tied table's copy
      c.parameters = plan_add(c.parameters, plan_mul(Vt, h));
      c.parameter_tensors += 1;
    }
    if (spec.heads) {
      const ModuleCost heads = spec.heads(t);
      c.parameters = plan_add(c.parameters, heads.parameters);
      c.parameter_tensors = plan_add(c.parameter_tensors, heads.parameter_tensors);
    }
    add_lm_head_cost(c, N, h, Vt, t, sp, spec.head_gradient_all_reduced);
  }
  if (!o.untie_embeddings_and_output_weights && !(first && last) && (first || last))
    c.tied_embedding_grads = {1, plan_mul(Vt, h)};
  c.output_elements = last ? 0 : plan_mul(Ns, h);
  if (sizes.cp > 1 && per > 0) {
    // Each layer's [K | V] rows of this rank's heads (MQA's one replicated group under tp).
    const std::int64_t groups = o.num_query_groups < t ? 1 : o.num_query_groups / t;
    const std::int64_t whole = plan_mul(plan_mul(b, o.seq_length), 2 * groups * o.kv_channels);
    const bool full = o.recompute.granularity == RecomputeOptions::Granularity::full;
    const std::int64_t recomputed =
        !full ? 0 : o.recompute.method == RecomputeOptions::Method::block ? std::min(o.recompute.num_layers, per) : per;
    c.cp_all_gather += {2 * per + recomputed, plan_mul(2 * per + recomputed, whole)};
    c.cp_reduce_scatter += {per, plan_mul(per, whole)};
  }
  return c;
}

void add_lm_head_cost(ModelChunkCost& c, std::int64_t N, std::int64_t h, std::int64_t Vt, std::int64_t t, bool sp,
                      bool gradient_all_reduced) {
  const std::int64_t Ns = sp ? N / t : N;
  c.activation_elements = plan_add(c.activation_elements, plan_mul(Ns, h));  // the head's input gradient
  const CollectiveCount rows{1, plan_mul(N, h)};
  if (sp) c.tp_all_gather += rows;  // the final hidden states' rows
  if (gradient_all_reduced) {
    if (t > 1) c.tp_forward += rows;  // the heads' input gradient, summed over the vocabulary shards
  } else if (sp) {
    c.tp_reduce_scatter += rows;  // its gradient
  } else if (t > 1) {
    c.tp_forward += rows;  // the head's input gradient, summed over the vocabulary shards
  }
  const std::int64_t chunk_rows = head_chunk_rows(Vt);
  for (std::int64_t r0 = 0; r0 < N; r0 += chunk_rows)
    c.tp_loss_statistics += vocab_parallel_cross_entropy_collectives(std::min(chunk_rows, N - r0), t);
}

std::int64_t transformer_total_parameters(const TransformerOptions& o, const TransformerPlanSpec& spec) {
  check_countable(o, 1, spec.model);
  const ModuleCost layers =
      TransformerBlock::cost(spec.block(false, 0, o.num_layers, true), CostShape{1, o.seq_length, 0, 1});
  // The word embedding, the learned positions (learned_absolute only), token types, the untied output layer.
  const std::int64_t tables = o.padded_vocab_size + (o.learned_positions ? o.max_position_embeddings : 0) + spec.token_types +
                              (o.untie_embeddings_and_output_weights ? o.padded_vocab_size : 0);
  std::int64_t n = plan_add(layers.parameters, plan_mul(tables, o.hidden_size));
  if (spec.heads) n = plan_add(n, spec.heads(1).parameters);
  return n;
}

}  // namespace tessera
