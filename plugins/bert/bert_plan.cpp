// The BERT model's costs for `tessera plan` (kind "model_plan", name "bert"): what BertModel builds
// and saves on one rank, from [model] and the layout alone. The counting is GPT's
// (core: nn/transformer_plan.hpp) with what BERT does differently (bert_model.cpp,
// bert_heads.cpp):
//   layers          the encoder block of bert_block_options: padding-masked self-attention, whose
//                   key mask [b, T] (N elements, u8 counted as elements) each chunk's block keeps
//                   for backward (TransformerBlock::cost counts it for padded_self)
//   first stage     with the binary head the token-type table [2, h] and this rank's token types
//                   (Ns ids) next to the word and position embeddings; under sequence parallelism
//                   its gradient is summed over tp like the position table's
//   last stage      the heads run their backward in forward and keep only dh [Ns, h]; their input
//                   gradient [N, h] is all-reduced over tp during forward even under sequence
//                   parallelism, where the heads all-gather the rows first and keep their own rows
//                   of dh (no reduce-scatter); the tied table (a copy when not also the first
//                   stage), the LM transform (dense h·h + h, LayerNorm 2h), the per-vocabulary
//                   bias V/t, and with the binary head the pooler (h·h + h) and the binary head
//                   (2h + 2), all replicated over tp with no gradient reduction (whole rows on
//                   every rank); the vocabulary-parallel cross-entropy's statistics per chunk of
//                   rows as GPT's. The sentence-order loss needs no collective.
// tests/model/test_model_plan.cpp builds the model for every stage and tensor-parallel rank and
// requires exact equality, as for GPT.
#include <fmt/format.h>

#include "bert_model.hpp"
#include "bert_options.hpp"
#include "tessera/config.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/nn/transformer_plan.hpp"
#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/plugin.hpp"

namespace tessera::bert {

namespace {

// The last stage's heads besides the tied table (BertModel::Heads), on one of tp ranks.
ModuleCost head_parameters(const BertOptions& o, std::int64_t tp) {
  const std::int64_t h = o.t.hidden_size;
  const LinearOptions square{h, h, true, o.t.init_method_std};
  ModuleCost c = Linear::cost(square, 0);  // lm_head.dense
  c += LayerNorm::cost(h, 0);              // lm_head.layernorm
  c.parameters = plan_add(c.parameters, o.t.padded_vocab_size / tp);  // lm_head.bias, this rank's shard
  c.parameter_tensors += 1;
  if (o.binary_head) {
    c += Linear::cost(square, 0);                                  // pooler.dense
    c += Linear::cost(LinearOptions{h, 2, true, o.t.init_method_std}, 0);  // binary_head
  }
  return c;
}

class BertPlanner : public ModelPlanner {
 public:
  BertPlanner(const ConfigSection& s, const ModelPlanContext& c) : sizes_(c.sizes) {
    refuse_pipeline_split(c.sizes.pipeline_split_rank, "bert");
    o_ = read_bert_options(s, c.vocab_size, 0, sizes_);
    spec_.model = "bert";
    spec_.block = [o = o_](bool sp, std::int64_t first_layer, std::int64_t count, bool ends_model) {
      return bert_block_options(o, nullptr, sp, first_layer, count, ends_model);
    };
    spec_.token_types = o_.binary_head ? 2 : 0;  // Megatron: num_tokentypes = 2 with the binary head
    spec_.head_gradient_all_reduced = true;
    spec_.heads = [o = o_](std::int64_t tp) { return head_parameters(o, tp); };
    spec_.heads_contents = o_.binary_head ? ", pooler, binary head" : "";
  }

  ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t b) const override {
    return transformer_chunk_cost(o_.t, sizes_, spec_, layout, chunk, b);
  }

  std::int64_t total_parameters() const override { return transformer_total_parameters(o_.t, spec_); }

  std::int64_t seq_length() const override { return o_.t.seq_length; }

  std::int64_t loss_parts() const override { return o_.binary_head ? 2 : 0; }  // 'lm loss', 'sop loss'

  double flops_per_iteration(std::int64_t sequences) const override { return bert_flops_per_iteration(o_, sequences); }

  std::string describe() const override {
    const TransformerOptions& t = o_.t;
    return fmt::format("BERT: {} layers, hidden {}, {} heads, ffn {}, seq {}, vocab {} (padded {}), binary head {}",
                       t.num_layers, t.hidden_size, t.num_attention_heads, t.ffn_hidden_size, t.seq_length,
                       t.vocab_size, t.padded_vocab_size, o_.binary_head ? "on" : "off");
  }

 private:
  BertOptions o_;
  ParallelSizes sizes_;
  TransformerPlanSpec spec_;
};

std::unique_ptr<ModelPlanner> make_bert_plan(const ConfigSection& s, const ModelPlanContext& context) {
  return std::make_unique<BertPlanner>(s, context);
}

}  // namespace
}  // namespace tessera::bert

TESSERA_PLUGIN(model_plan, bert, tessera::bert::make_bert_plan)
