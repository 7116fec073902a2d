// Multi-token prediction (DeepSeek-V3; Megatron-Core's MultiTokenPredictionLayer, docs/mtp.md): one
// depth of [model] mtp_num_layers, on the last pipeline stage after the final norm.
//
// Depth d (0-based) takes h, the previous depth's output (the model's final hidden states for
// d = 0), and e, the embeddings of the tokens d + 1 places on (the model's own embedding, GptModel),
// and returns
//   final_layernorm(layer(eh_proj([enorm(e) | hnorm(h)])))
// where eh_proj is a column-parallel 2h → h linear without bias whose output is gathered over tp
// (under sequence parallelism its input rows too, and the output keeps this rank's rows again, as
// Megatron-Core's gather then scatter), and `layer` is a transformer layer built like the model's
// last (its MLP, window and rotary positions; Megatron-Core builds it from the last layer's spec).
// The model's LM head turns the output into that depth's loss.
//
// Names: "mtp.layers.<d>.enorm", ".hnorm", ".eh_proj", ".final_layernorm", and the layer's own under
// "mtp.layers.<d>" (ln1, attention, ln2, mlp). The layer is model layer num_layers + d for its
// initialisation-independent indices: dropout sites and mixture-of-experts metrics. Under
// mtp_use_repeated_layer the model builds depth 0 only and applies it at every depth.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tessera/model_plan.hpp"
#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/transformer_options.hpp"

namespace tessera::gpt {

class MtpDepth {
 public:
  // `block` is the depth's layer and final norm (mtp_block_options).
  MtpDepth(const TransformerOptions& o, std::int64_t depth, const TransformerBlockOptions& block);
  void collect_parameters(std::vector<Parameter*>& out);
  // e and h [B,T,C] (under sequence parallelism this rank's token rows [B·T/tp, C]) → the same shape.
  Tensor forward(StepContext& ctx, const Tensor& e, const Tensor& h, const AttentionInputs& in);
  struct Grads {
    Tensor de, dh;
  };
  Grads backward(StepContext& ctx, const Tensor& dy);

  // On one of s.tp ranks: the norms, the projection and `block` (mtp_block_options).
  static ModuleCost cost(const TransformerOptions& o, const TransformerBlockOptions& block, const CostShape& s);

 private:
  bool sequence_parallel(const StepContext& ctx) const;
  std::int64_t hidden_;
  TpGroup tp_;
  bool sequence_parallel_;
  std::unique_ptr<Module> enorm_, hnorm_;
  ColumnParallelLinear eh_proj_;
  TransformerBlock block_;
};

// Depth `depth`'s layer and final norm: `last_layer`'s block options (the model's block for its
// last layer, ending the model) renamed and re-indexed as model layer num_layers + depth.
TransformerBlockOptions mtp_block_options(TransformerBlockOptions last_layer, std::int64_t num_layers,
                                          std::int64_t depth);

// What the depths add to a chunk of `b` sequences: on the last virtual stage the depths themselves
// (a shared layer's weights once),
// each with an embedding lookup and an LM head, and (pp > 1) the copies of the embedding tables
// there; on the first virtual stage the tables' gradients summed with those copies. `last_layer`:
// the model's block of its last layer alone, ending the model, as the planner builds it.
void add_mtp_chunk_cost(ModelChunkCost& c, const TransformerOptions& o, const TransformerBlockOptions& last_layer,
                        bool first_virtual_stage, bool last_virtual_stage, std::int64_t b, std::int64_t tp,
                        bool sequence_parallel);

// "1 depth", "2 depths", "3 depths sharing one layer" (mtp_use_repeated_layer): the model's and the
// plan's wording.
std::string describe_mtp_depths(const TransformerOptions& o);

// The log's name of depth d's loss: "mtp_<d + 1> loss", as Megatron-Core's.
std::string mtp_loss_name(std::int64_t depth);

}  // namespace tessera::gpt
