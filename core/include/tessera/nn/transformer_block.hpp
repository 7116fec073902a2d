// TransformerBlock (as Megatron-Core's transformer_block): the layers of one pipeline stage's model
// chunk, all built from one TransformerLayerOptions (its LayerSpec picks the attention, norm and
// MLP), with activation recompute (recompute.hpp) and an optional final norm. A model plugin keeps
// only what is its own — embeddings, heads, losses, which chunk holds which layers — and gets the
// layers, their recompute and their plan costs from here.
//
// Layer i of the block is layer first_layer + i of the model: "<name>.<first_layer + i>", its
// initialisation and dropout masks follow the global index, so they do not depend on the pipeline
// split.
//
// Inputs: the hidden state x [B,T,C] (under sequence parallelism this rank's token rows
// [B·T/tp, C]) and the layers' AttentionInputs (padding mask, cross-attention memory and its
// mask), which the block keeps for backward (and for recompute). Backward returns x's gradient and,
// with cross-attention, the memory's: every layer's contribution summed and all-reduced over tp
// once.
//
// Full recompute: a recomputed segment keeps only its input in forward (saved under the segment's
// address as [·, T/shards, C], which gives backward the sequence length sequence-parallel attention
// needs) and in backward runs its layers' forward again into a scratch store, then their backward:
// the same ops on the same input, so gradients are bit-identical to keeping everything.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/recompute.hpp"
#include "tessera/nn/transformer_layer.hpp"

namespace tessera {

struct TransformerBlockOptions {
  // Every layer's (attention.recompute_core and recompute_mlp are set from `recompute`).
  TransformerLayerOptions layer;
  std::string name = "layers";    // layer i is "<name>.<i>" …
  // … unless this names it (GPT's multi-token prediction layer num_layers + d: "mtp.layers.<d>").
  std::function<std::string(std::int64_t layer)> layer_name;
  std::int64_t first_layer = 0;   // global index of the block's first layer
  std::int64_t num_layers = 0;
  RecomputeOptions recompute;
  std::string final_norm;  // parameter name prefix of a norm after the last layer ("final_layernorm"); "" none
  // The MLP of global layer i where layers differ (mixture-of-experts layers every few layers,
  // Megatron-Core's moe_layer_freq); empty: every layer's is layer.spec.mlp.
  std::function<MlpSpec(std::int64_t layer)> mlp_of_layer;
  // The attention's window_left of global layer i where layers differ (Megatron-Core's
  // window_attn_skip_freq); empty: every layer's is layer.attention.window_left.
  std::function<std::int64_t(std::int64_t layer)> window_of_layer;
  // Whether layer `layer` (its index in the whole model) has the rotary positions layer.attention
  // holds (false: none, a NoPE layer); unset: every layer.
  std::function<bool(std::int64_t layer)> rope_of_layer;
  bool layers_differ() const { return mlp_of_layer || window_of_layer || rope_of_layer; }
};

// `count` layers from global layer `first`: "layers 4–7", "layer 4", or "no layers" (a pipeline
// chunk that holds only the embedding or the loss).
std::string layers_text(std::int64_t first, std::int64_t count);

class TransformerBlock {
 public:
  TransformerBlock(const TransformerBlockOptions& o, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out);

  Tensor forward(StepContext& ctx, const Tensor& x, const AttentionInputs& in = {});
  struct Grads {
    Tensor dx;
    Tensor dmemory;  // cross-attention only
  };
  Grads backward(StepContext& ctx, const Tensor& dy);

  // On shape s (s.memory_seq: the cross-attention memory's length). Counts the memory and masks the
  // block keeps for backward once, and the segments' inputs under full recompute.
  static ModuleCost cost(const TransformerBlockOptions& o, const CostShape& s);
  // "layers 4–7" (for describe() and plan tables): layers_text of its layers
  std::string describe() const;

 private:
  // A recomputed segment's input under distribute_saved_activations: this rank's flat 1/tp chunk,
  // and the shape the all-gathered chunks form again.
  struct DistributedInput {
    Tensor part;
    Shape shape;
    std::vector<Tensor> tensors() const { return {part}; }
  };
  struct SavedInputs {  // the layers' AttentionInputs, for backward and recompute
    Tensor key_mask, memory, memory_mask, first_key;
    std::vector<Tensor> tensors() const { return {key_mask, memory, memory_mask, first_key}; }
  };
  Tensor forward_segment(StepContext& ctx, const RecomputeSegment& seg, Tensor x, const AttentionInputs& in);
  Tensor backward_segment(StepContext& ctx, const RecomputeSegment& seg, Tensor dy, const AttentionInputs& in,
                          Tensor* dmemory);
  bool sequence_parallel(const StepContext& ctx) const;

  TransformerBlockOptions o_;
  std::vector<std::unique_ptr<TransformerLayer>> layers_;
  std::vector<RecomputeSegment> segments_;
  std::unique_ptr<Module> final_norm_;
};

}  // namespace tessera
