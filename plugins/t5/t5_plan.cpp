// The T5 model's costs for `tessera plan` (kind "model_plan", name "t5"): what T5Model builds and
// saves on one rank, from [model] and the layout alone. Each pipeline stage holds what
// t5_stage_layout() gives it (pp = 1: everything; under a split at R, stages [0, R) the encoder's
// layers, [R, pp) the decoder's), one chunk per stage (no interleaving):
//   embeddings   on the stages that embed (0 and R; with pp = 1 one stage for both) and the head's:
//                the vocabulary-parallel word table V_t·h, looking up this stage's ids in one call
//                (VocabParallelEmbedding::cost over N_e and/or N_d rows: the ids kept, one all-reduce
//                of the rows in forward), the one position table P·h and the position ids looked up.
//                The head's stage without a lookup holds copies of both tables (no activation);
//                under pp every holder's two tables are tied over the embedding group
//   encoder      TransformerBlock::cost of this stage's encoder layers on [b, S_e]: padded
//                self-attention, whose key mask [b, S_e] the block keeps
//   decoder      TransformerBlock::cost of this stage's decoder layers on [b, S_d] with memory_seq
//                S_e: causal self-attention + cross-attention; the block keeps the memory
//                [b·S_e, h] and its mask, and all-reduces the memory's gradient over tp once in
//                backward. With the encoder on the same stage the memory mask is the encoder's key
//                mask, the same tensor: the store holds it once, so it is counted once
//   LM head      on the last stage: the per-vocabulary bias V_t over the decoder's N_d = b·S_d rows:
//                dh [N_d, h] kept for backward and all-reduced over tp in forward, the
//                vocabulary-parallel cross-entropy's statistics per chunk of rows as GPT's
//   boundary     the tensors t5_boundary_shapes() names: [b, S_e, h] before the split, the
//                decoder's hidden state and the encoder output after it
// tests/model/test_model_plan.cpp builds the model for every stage and tensor-parallel rank and
// requires exact equality, as for GPT and BERT.
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "t5_model.hpp"
#include "t5_options.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/model_plan.hpp"
#include "tessera/nn/tied_lm_head.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/transformer_plan.hpp"
#include "tessera/nn/vocab_parallel_cross_entropy.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"
#include "tessera/plugin.hpp"

namespace tessera::t5 {

namespace {

class T5Planner : public ModelPlanner {
 public:
  T5Planner(const ConfigSection& s, const ModelPlanContext& c) : sizes_(c.sizes) {
    o_ = read_t5_options(s, c.vocab_size, 0, sizes_);
  }

  ModelChunkCost chunk_cost(const ParallelLayout& layout, int chunk, std::int64_t b) const override {
    if (layout.tp() != sizes_.tp || layout.pp() != sizes_.pp || layout.vpp() != 1 ||
        layout.pipeline_split_rank() != sizes_.pipeline_split_rank)
      throw Error(fmt::format("t5 plan: layout {} is not the one the planner was made for (tp {}, pp {}, split {})",
                              layout.str(), sizes_.tp, sizes_.pp, sizes_.pipeline_split_rank));
    if (chunk != 0) throw Error(fmt::format("t5 plan: chunk {} outside [0, 1)", chunk));
    if (b < 1) throw Error(fmt::format("t5 plan: micro batch size {} < 1", b));
    check_countable(countable(), b, "t5");
    const int pp = layout.pp(), stage = layout.pp_rank(), split = layout.pipeline_split_rank();
    const T5StageLayout st = t5_stage_layout(o_, stage, pp, split);
    const std::int64_t t = layout.tp(), h = o_.t.hidden_size, Vt = o_.t.padded_vocab_size / t;
    const std::int64_t Se = o_.t.seq_length, Sd = o_.decoder_seq_length;
    const std::int64_t Ne = b * Se, Nd = b * Sd;

    ModelChunkCost c;
    std::vector<std::string> contents;
    if (st.encoder.count > 0) contents.push_back("encoder " + layers(st.encoder));
    if (st.decoder.count > 0) contents.push_back("decoder " + layers(st.decoder));
    if (st.holds_embeddings()) {
      const std::int64_t looked_up = (st.embeds_encoder ? Ne : 0) + (st.embeds_decoder ? Nd : 0);
      contents.push_back(looked_up > 0 ? "embeddings" : "embeddings (tied copies)");
      if (looked_up > 0) {
        // One lookup for this stage's sequences; the position ids of its rows.
        c += VocabParallelEmbedding::cost(o_.t.padded_vocab_size, h, looked_up, t, false);
        c.activation_elements = plan_add(c.activation_elements, looked_up);
      } else {
        c.parameters = plan_add(c.parameters, plan_mul(Vt, h));
        c.parameter_tensors += 1;
      }
      c.parameters = plan_add(c.parameters, plan_mul(o_.t.max_position_embeddings, h));
      c.parameter_tensors += 1;
      if (pp > 1) c.tied_embedding_grads = {2, plan_add(plan_mul(Vt, h), plan_mul(o_.t.max_position_embeddings, h))};
    }
    if (st.encoder.count > 0)
      c += TransformerBlock::cost(t5_block_options(o_, nullptr, false, st.encoder), CostShape{b, Se, 0, t});
    if (st.decoder.count > 0) {
      c += TransformerBlock::cost(t5_block_options(o_, nullptr, true, st.decoder), CostShape{b, Sd, Se, t});
      if (st.encoder.count > 0) c.activation_elements -= Ne;  // the memory mask is the encoder's key mask, held once
    }
    if (st.head) {
      // The head: its bias shard, dh kept and summed over the vocabulary shards in forward, the loss
      // statistics per chunk of rows.
      contents.push_back("LM head");
      c.parameters = plan_add(c.parameters, Vt);
      c.parameter_tensors += 1;
      c.activation_elements = plan_add(c.activation_elements, plan_mul(Nd, h));
      if (t > 1) c.tp_forward += CollectiveCount{1, plan_mul(Nd, h)};
      const std::int64_t chunk_rows = head_chunk_rows(Vt);
      for (std::int64_t r0 = 0; r0 < Nd; r0 += chunk_rows)
        c.tp_loss_statistics += vocab_parallel_cross_entropy_collectives(std::min(chunk_rows, Nd - r0), t);
    } else {
      const std::vector<Shape> sent = t5_boundary_shapes(o_, split, b, stage);
      c.output_tensors = static_cast<std::int64_t>(sent.size());
      for (const Shape& shape : sent) c.output_elements = plan_add(c.output_elements, shape_numel(shape));
    }
    c.contents = fmt::format("{}", fmt::join(contents, ", "));
    return c;
  }

  std::int64_t total_parameters() const override {
    check_countable(countable(), 1, "t5");
    const std::int64_t h = o_.t.hidden_size;
    std::int64_t n = plan_mul(o_.t.padded_vocab_size + o_.t.max_position_embeddings, h);
    const T5StageLayout whole = t5_stage_layout(o_, 0, 1, 0);
    n = plan_add(n, TransformerBlock::cost(t5_block_options(o_, nullptr, false, whole.encoder), CostShape{1, 1, 0, 1})
                        .parameters);
    n = plan_add(n, TransformerBlock::cost(t5_block_options(o_, nullptr, true, whole.decoder), CostShape{1, 1, 1, 1})
                        .parameters);
    return plan_add(n, o_.t.padded_vocab_size);  // the head's bias
  }

  // Megatron's tokens per sample for T5: the encoder's length (T5Model::seq_length).
  std::int64_t seq_length() const override { return o_.t.seq_length; }

  double flops_per_iteration(std::int64_t sequences) const override { return t5_flops_per_iteration(o_, sequences); }

  std::string describe() const override {
    const TransformerOptions& t = o_.t;
    return fmt::format("T5: encoder {} layers (seq {}), decoder {} layers (seq {}), hidden {}, {} heads, ffn {}, "
                       "vocab {} (padded {})",
                       o_.encoder_num_layers, t.seq_length, o_.decoder_num_layers, o_.decoder_seq_length,
                       t.hidden_size, t.num_attention_heads, t.ffn_hidden_size, t.vocab_size, t.padded_vocab_size);
  }

 private:
  static std::string layers(const T5StackPart& part) { return layers_text(part.first_layer, part.count); }
  // Both stacks over both lengths, for check_countable's bound (an overestimate).
  TransformerOptions countable() const {
    TransformerOptions t = o_.t;
    t.num_layers = o_.encoder_num_layers + o_.decoder_num_layers;
    t.seq_length = o_.t.seq_length + o_.decoder_seq_length;
    return t;
  }

  T5Options o_;
  ParallelSizes sizes_;
};

std::unique_ptr<ModelPlanner> make_t5_plan(const ConfigSection& s, const ModelPlanContext& context) {
  return std::make_unique<T5Planner>(s, context);
}

}  // namespace
}  // namespace tessera::t5

TESSERA_PLUGIN(model_plan, t5, tessera::t5::make_t5_plan)
