// The GPT model's costs for `tessera plan` (kind "model_plan", name "gpt"): what GptModel builds and
// saves on one rank, from [model] and the layout alone, so that huge layouts are planned without
// allocating anything.
//
// The layers, their recompute and the final norm are the same TransformerBlock the model builds
// (gpt_block_options), and their figures are the block's own (TransformerBlock::cost, which sums
// its layers' modules: nn/module_cost.hpp). What is GPT's own is counted here, next to the code in
// gpt_model.cpp it describes:
//   first virtual stage  the vocabulary-parallel token embedding (VocabParallelEmbedding::cost: the
//                        table shard V_t·h, the ids N, its all-reduce or reduce-scatter), the position
//                        embedding P·h and its position ids (Ns rows: this rank's token rows)
//   last virtual stage   the fused LM head: the tied table (a copy V_t·h when the stage is not also
//                        the first), the input gradient it keeps for backward (Ns·h), its all-reduce
//                        (or all-gather of the input and reduce-scatter of the gradient under sequence
//                        parallelism, both during forward), and per chunk of rows the vocabulary-
//                        parallel cross-entropy's statistics
// tests/model/test_model_plan.cpp builds the model for each stage and tensor-parallel rank and
// requires exact equality; tests/nn/test_transformer_block.cpp checks the block's figures for every
// layer spec.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gpt_options.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt {

namespace {

// The largest counts chunk_cost forms are a few times these (weights, a layer's saved activations,
// the LM head); past 2^58 some sum or product may not fit 64 bits.
void check_countable(const GptOptions& o, std::int64_t micro_batch) {
  const long double h = o.hidden_size, F = o.ffn_hidden_size, T = o.seq_length, b = micro_batch;
  const long double V = o.padded_vocab_size, H = o.num_attention_heads, L = o.num_layers;
  const long double per_layer = 4 * h * h + 3 * F * h + b * T * (10 * h + 2 * F) + b * H * T;
  const long double total = L * per_layer + V * h * (2 + b * T) + o.max_position_embeddings * h;
  if (total > static_cast<long double>(std::int64_t{1} << 58))
    throw ConfigError(fmt::format(
        "gpt: model.num_layers {}, hidden_size {}, ffn_hidden_size {}, seq_length {}, num_attention_heads {} with "
        "micro_batch_size {} need about {:.3g} elements, more than can be counted in 64 bits",
        o.num_layers, o.hidden_size, o.ffn_hidden_size, o.seq_length, o.num_attention_heads, micro_batch,
        static_cast<double>(total)));
}

class GptPlanner : public ModelPlanner {
 public:
  GptPlanner(const ConfigSection& s, const ModelPlanContext& c) : sizes_(c.sizes) {
    o_ = read_gpt_options(s, c.vocab_size, 0, sizes_.tp, sizes_.pp, sizes_.vpp, sizes_.sequence_parallel);
  }

  ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t b) const override {
    if (layout.tp() != sizes_.tp || layout.pp() != sizes_.pp || layout.vpp() != sizes_.vpp)
      throw Error(fmt::format("gpt plan: layout {} is not the one the planner was made for (tp {}, pp {}, vpp {})",
                              layout.str(), sizes_.tp, sizes_.pp, sizes_.vpp));
    if (chunk < 0 || chunk >= layout.vpp())
      throw Error(fmt::format("gpt plan: chunk {} outside [0, {})", chunk, layout.vpp()));
    if (b < 1) throw Error(fmt::format("gpt plan: micro batch size {} < 1", b));
    check_countable(o_, b);
    const std::int64_t t = layout.tp(), p = layout.pp(), v = layout.vpp();
    const std::int64_t virtual_stage = chunk * p + layout.pp_rank(), virtual_stages = p * v;
    const std::int64_t per = o_.num_layers / virtual_stages, first_layer = virtual_stage * per;
    const bool first = virtual_stage == 0, last = virtual_stage == virtual_stages - 1;

    const std::int64_t h = o_.hidden_size, T = o_.seq_length, N = b * T, Vt = o_.padded_vocab_size / t;
    const bool sp = sizes_.sequence_parallel && t > 1;
    const std::int64_t Ns = sp ? N / t : N;  // token rows held between tensor-parallel regions

    ModelChunkCost c;
    c.contents = per == 1 ? fmt::format("layer {}", first_layer)
                          : fmt::format("layers {}–{}", first_layer, first_layer + per - 1);
    if (first) c.contents += ", embeddings";
    if (last) c.contents += first ? ", final norm, LM head" : ", final norm, LM head (tied copy)";

    const CostShape shape{b, T, 0, t};
    c += TransformerBlock::cost(gpt_block_options(o_, nullptr, sp, first_layer, per, last), shape);
    if (first) {
      c += VocabParallelEmbedding::cost(o_.padded_vocab_size, h, N, t, sp);
      c.parameters = plan_add(c.parameters, plan_mul(o_.max_position_embeddings, h));
      c.parameter_tensors += 1;
      c.activation_elements = plan_add(c.activation_elements, Ns);  // position ids
      if (sp) c.tp_replicated_grads += {1, plan_mul(o_.max_position_embeddings, h)};
    }
    if (last) {
      if (!first) {  // the head's copy of the tied table
        c.parameters = plan_add(c.parameters, plan_mul(Vt, h));
        c.parameter_tensors += 1;
      }
      c.activation_elements = plan_add(c.activation_elements, plan_mul(Ns, h));  // the head's input gradient
      const CollectiveCount rows{1, plan_mul(N, h)};
      if (sp) {
        c.tp_all_gather += rows;      // the final hidden states' rows
        c.tp_reduce_scatter += rows;  // their gradient
      } else if (t > 1) {
        c.tp_forward += rows;  // the head's input gradient, summed over the vocabulary shards
      }
      const std::int64_t chunk_rows = head_chunk_rows(Vt);
      for (std::int64_t r0 = 0; r0 < N; r0 += chunk_rows)
        c.tp_loss_statistics += vocab_parallel_cross_entropy_collectives(std::min(chunk_rows, N - r0), t);
    }
    if (!(first && last) && (first || last)) c.tied_embedding_grads = {1, plan_mul(Vt, h)};
    c.output_elements = last ? 0 : plan_mul(Ns, h);
    return c;
  }

  std::int64_t total_parameters() const override {
    check_countable(o_, 1);
    const std::int64_t h = o_.hidden_size;
    const ModuleCost layers = TransformerBlock::cost(gpt_block_options(o_, nullptr, false, 0, o_.num_layers, true),
                                                     CostShape{1, o_.seq_length, 0, 1});
    return plan_add(layers.parameters, plan_mul(o_.padded_vocab_size + o_.max_position_embeddings, h));
  }

  std::int64_t seq_length() const override { return o_.seq_length; }

  double flops_per_iteration(std::int64_t sequences) const override { return gpt_flops_per_iteration(o_, sequences); }

  std::string describe() const override {
    return fmt::format("GPT: {} layers, hidden {}, {} heads ({} query groups), ffn {}, seq {}, vocab {} (padded {})",
                       o_.num_layers, o_.hidden_size, o_.num_attention_heads, query_groups(), o_.ffn_hidden_size,
                       o_.seq_length, o_.vocab_size, o_.padded_vocab_size);
  }

 private:
  std::int64_t query_groups() const { return o_.num_query_groups > 0 ? o_.num_query_groups : o_.num_attention_heads; }

  GptOptions o_;
  ParallelSizes sizes_;
};

std::unique_ptr<ModelPlanner> make_gpt_plan(const ConfigSection& s, const ModelPlanContext& context) {
  return std::make_unique<GptPlanner>(s, context);
}

}  // namespace
}  // namespace tessera::gpt

TESSERA_PLUGIN(model_plan, gpt, tessera::gpt::make_gpt_plan)
