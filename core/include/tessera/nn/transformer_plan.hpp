// The plan (`tessera plan`, model_plan.hpp) of a model built as GPT's: vocabulary-parallel word
// embedding + learned positions on the first virtual stage, TransformerBlock layers split over the
// virtual stages, and on the last a fused LM head tied to the word embedding. GPT's planner
// (gpt_plan.cpp) and BERT's (plugins/bert/bert_plan.cpp) call it with what differs between them
// (TransformerPlanSpec): the layers' options, BERT's token-type table, how the head's input gradient
// crosses tp, the heads' own parameters.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "tessera/model_plan.hpp"
#include "tessera/nn/transformer_options.hpp"

namespace tessera {

struct TransformerPlanSpec {
  std::string model;  // the model plugin, in error messages: "<model> plan: …"
  // The layers [first_layer, first_layer + count) of a chunk, as the model builds them (its
  // *_block_options with a null tp group).
  std::function<TransformerBlockOptions(bool sequence_parallel, std::int64_t first_layer, std::int64_t count,
                                        bool ends_model)>
      block;
  // First virtual stage: a token-type table [token_types, h] added to the embeddings, with its ids
  // (this rank's token rows) kept for backward — BERT with its binary head; 0: none (GPT).
  std::int64_t token_types = 0;
  // Last virtual stage: how the head's input gradient crosses tp.
  //   false (GPT): all-reduced during forward; under sequence parallelism the head all-gathers its
  //                input and reduce-scatters the gradient instead.
  //   true (BERT): all-reduced during forward in every case; under sequence parallelism the heads
  //                all-gather their input first and keep their own rows of the (whole) gradient.
  bool head_gradient_all_reduced = false;
  // Last virtual stage: the heads' parameters besides the tied table (BERT's LM transform and
  // per-vocabulary bias, pooler, binary head) on one of `tp` ranks. Their backward runs in forward,
  // so they hold nothing; only parameters and parameter tensors are read. Null: none (GPT).
  std::function<ModuleCost(std::int64_t tp)> heads;
  std::string heads_contents;  // appended to the last chunk's contents: ", pooler, binary head"
};

// ConfigError when the counts a plan forms (weights, a layer's saved activations, the LM head) may
// not fit 64 bits.
void check_countable(const TransformerOptions& o, std::int64_t micro_batch, const std::string& model);

// One rank's chunk `chunk` of the stage `layout` places it on, for microbatches of b sequences.
// `sizes` are those the planner was made for (the layout must have them).
ModelChunkCost transformer_chunk_cost(const TransformerOptions& o, const ParallelSizes& sizes,
                                      const TransformerPlanSpec& spec, const ParallelLayout& layout, int chunk,
                                      std::int64_t b);

// The fused LM head over N token rows on one of t ranks (its table apart): the input gradient it
// keeps (this rank's rows), how that gradient crosses tp (gradient_all_reduced: the spec's
// head_gradient_all_reduced) and the cross-entropy's statistics per chunk of rows. GPT's
// multi-token prediction adds one per depth.
void add_lm_head_cost(ModelChunkCost& c, std::int64_t N, std::int64_t h, std::int64_t Vt, std::int64_t t, bool sp,
                      bool gradient_all_reduced);

// Every tensor once (one process, no tied copy).
std::int64_t transformer_total_parameters(const TransformerOptions& o, const TransformerPlanSpec& spec);

}  // namespace tessera
