// The GPT model's costs for `tessera plan` (kind "model_plan", name "gpt"): what GptModel builds and
// saves on one rank, from [model] and the layout alone, so that huge layouts are planned without
// allocating anything.
//
// The counting is transformer_plan.cpp's (shared with BERT's plan): the layers, their recompute
// and the final norm are the same TransformerBlock the model builds (gpt_block_options), and their
// figures are the block's own (TransformerBlock::cost); what is GPT's own is the vocabulary-parallel
// token embedding and the position embedding on the first virtual stage, and on the last the fused
// LM head tied to the token embedding, whose input gradient is all-reduced over tp during forward
// (under sequence parallelism: the input all-gathered and the gradient reduce-scattered instead).
// Multi-token prediction's depths, with their embedding lookups, heads and the last stage's table
// copies, are gpt_mtp.cpp's (add_mtp_chunk_cost).
// tests/model/test_model_plan.cpp builds the model for each stage and tensor-parallel rank and
// requires exact equality; tests/nn/test_transformer_block.cpp checks the block's figures for every
// layer spec.
#include <fmt/format.h>

#include "gpt_options.hpp"
#include "tessera/config.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/nn/transformer_plan.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt {

namespace {

class GptPlanner : public ModelPlanner {
 public:
  GptPlanner(const ConfigSection& s, const ModelPlanContext& c) : sizes_(c.sizes) {
    refuse_pipeline_split(c.sizes.pipeline_split_rank, "gpt");
    o_ = read_gpt_options(s, c.vocab_size, 0, sizes_);
    spec_ = spec_of(o_);
    GptOptions whole = o_;  // every expert, whatever the expert-parallel split
    whole.moe.expert_parallel = 1;
    whole.moe.expert_tensor_parallel = 0;
    whole_ = {whole, spec_of(whole)};
  }

  ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t b) const override {
    ModelChunkCost c = transformer_chunk_cost(o_, sizes_, spec_, layout, chunk, b);
    const int virtual_stage = chunk * layout.pp() + layout.pp_rank(), virtual_stages = layout.pp() * layout.vpp();
    const bool sp = sizes_.sequence_parallel && layout.tp() > 1;
    add_mtp_chunk_cost(c, o_, gpt_block_options(o_, nullptr, sp, o_.num_layers - 1, 1, /*ends_model=*/true),
                       virtual_stage == 0, virtual_stage == virtual_stages - 1, b, layout.tp(), sp);
    return c;
  }

  std::int64_t total_parameters() const override {
    const GptOptions& o = whole_.first;
    std::int64_t n = transformer_total_parameters(o, whole_.second);
    const TransformerBlockOptions last_layer = gpt_block_options(o, nullptr, false, o.num_layers - 1, 1, true);
    for (std::int64_t d = 0; d < o.mtp_physical_layers(); ++d)
      n = plan_add(n, MtpDepth::cost(o, mtp_block_options(last_layer, o.num_layers, d), CostShape{1, o.seq_length, 0, 1})
                          .parameters);
    return n;
  }

  std::int64_t seq_length() const override { return o_.seq_length; }
  std::int64_t metrics() const override { return static_cast<std::int64_t>(gpt_metric_names(o_).size()); }

  double flops_per_iteration(std::int64_t sequences) const override { return gpt_flops_per_iteration(o_, sequences); }

  std::string describe() const override {
    return fmt::format("GPT: {} layers, hidden {}, {} heads ({} query groups), ffn {}, seq {}, vocab {} (padded {}){}",
                       o_.num_layers, o_.hidden_size, o_.num_attention_heads, query_groups(), o_.ffn_hidden_size,
                       o_.seq_length, o_.vocab_size, o_.padded_vocab_size, llama_style_description(o_));
  }

 private:
  static TransformerPlanSpec spec_of(const GptOptions& o) {
    TransformerPlanSpec spec;
    spec.model = "gpt";
    spec.block = [o](bool sp, std::int64_t first_layer, std::int64_t count, bool ends_model) {
      return gpt_block_options(o, nullptr, sp, first_layer, count, ends_model);
    };
    return spec;
  }
  std::int64_t query_groups() const { return o_.num_query_groups > 0 ? o_.num_query_groups : o_.num_attention_heads; }

  GptOptions o_;
  ParallelSizes sizes_;
  TransformerPlanSpec spec_;
  std::pair<GptOptions, TransformerPlanSpec> whole_;  // for total_parameters
};

std::unique_ptr<ModelPlanner> make_gpt_plan(const ConfigSection& s, const ModelPlanContext& context) {
  return std::make_unique<GptPlanner>(s, context);
}

}  // namespace
}  // namespace tessera::gpt

TESSERA_PLUGIN(model_plan, gpt, tessera::gpt::make_gpt_plan)
