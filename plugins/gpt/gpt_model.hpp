// GPT: learned token and position embeddings, pre-LayerNorm decoder layers with causal attention
// (num_query_groups: MHA, GQA or MQA), a final LayerNorm and an LM head tied to the token embedding.
//
// The LM head and the cross-entropy are fused and chunked over rows (nn/tied_lm_head.hpp): the
// [B·T, V] logits never exist whole, and the head's gradients are computed in forward.
//
// Tensor parallelism (ModelContext::parallel's tp group): attention heads, the MLP's ffn and the
// vocabulary are split across the group (see docs/parallelism.md); the embedding table is
// vocab-parallel, so the tied head computes only this rank's vocabulary columns of each chunk of
// logits, the cross-entropy combines per-row statistics over tp (vocab_parallel_cross_entropy) and
// the head's input gradient, partial per rank, is all-reduced once after the last chunk.
//
// Sequence parallelism (the layout's sequence_parallel, with tp > 1): between the tensor-parallel
// regions every rank holds only its 1/tp of the B·T token rows ([B·T/tp, C], also what pipeline
// stages pass on). The embedding's all-reduce becomes a reduce-scatter; position embeddings and
// embedding dropout act on the shard (the dropout at the shard's offset, so the mask is the
// one-process one); the layers and the final LayerNorm run on shards; the LM head needs whole rows,
// so the final hidden states are all-gathered before it and its input gradient is reduce-scattered
// instead of all-reduced. The position embedding and the final LayerNorm then get gradients from
// this rank's tokens only and are summed over tp by the trainer (reduce_grad_over_tp).
// Generation (next_token_logits) runs without it: its B·T need not divide tp.
// Cached generation (start_session): the prompts right-padded into one [B, T] forward that fills a
// KvCache (nn/kv_cache.hpp) of the session's capacity per row (at most seq_length), then one token per row per step at the
// row's own position (learned position rows or rope angles at that position).
//
// Context parallelism (the layout's cp group, nn/context_parallel.hpp): training and evaluation
// steps set StepContext::context_parallel and run on the rank's chunks of every sequence (forward
// takes them from the batch: this_ranks_tokens); positions are those in the whole sequence, the
// layers' attention gathers the keys and values over cp, and the loss is the mean over every cp
// rank's tokens. Stage boundaries carry [B, T/cp, C] (under sequence parallelism [B·T/cp/tp, C]).
// Generation sets no cp group: whole sequences on every rank.
//
// Pipeline parallelism (the pp group): stage s of p holds layers [s·L/p, (s+1)·L/p); with a
// virtual pipeline of v chunks per rank, chunk c of stage s is virtual stage c·p + s and holds
// layers [(c·p + s)·L/(p·v), (c·p + s + 1)·L/(p·v)) (Megatron-LM's assignment). The first stage
// also holds the embeddings (run by its chunk 0), the last the final LayerNorm and the LM head
// (run by its last chunk). The head is tied
// to the token embedding, so the last stage keeps its own copy of the table (Parameter::stage_tie),
// initialised identically (initialisation is counter-based); the trainer sums the two copies'
// gradients over the embedding group, so they stay equal.
//
// Multi-token prediction ([model] mtp_num_layers; gpt_mtp.hpp, docs/mtp.md): in training the last
// stage runs the depths after the main head, depth d on the tokens, labels, loss mask and positions
// shifted d + 1 places left (zeros shifted in, as Megatron-Core's roll_tensor), through the model's
// own embedding (its dropout at a site of its own) and LM head; each depth's run saves into a store
// of its own (the embedding and head save under one key per run). The loss returned stays the main
// one; each depth's, weighted mtp_loss_scaling_factor / mtp_num_layers in the gradient, is reported
// as the metric "mtp_<d+1> loss". With pp > 1 the last stage keeps copies of the word embedding
// (untied too) and of the position table, tied to the first stage's (Parameter::stage_tie).
// mtp_use_repeated_layer: one MtpDepth applied at every depth (mtp_depth, mtp_context).
// Evaluation and generation skip the depths (Megatron-Core's validation loss is the main one too).
//
// Llama-style blocks (docs/llama.md; Megatron-Core's [model] keys): position_embedding_type = "rope"
// drops the learned position table (attention rotates q and k instead), normalization = "RMSNorm",
// swiglu, add_bias_linear = false, and untie_embeddings_and_output_weights: the last stage holds
// its own output layer "output_layer.weight" [V/tp, C] (a column-parallel linear without bias, the
// vocabulary split as the embedding's) instead of a copy of the word embedding, and the fused head
// uses it as its table.
#pragma once
#include <algorithm>
#include <memory>
#include <vector>

#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/tied_lm_head.hpp"
#include "tessera/nn/transformer_options.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"

#include "gpt_mtp.hpp"

namespace tessera::gpt {

// GPT reads the transformer keys every such model reads (nn/transformer_options.hpp).
using GptOptions = TransformerOptions;

// The layers of GPT's model chunk holding layers [first_layer, first_layer + count): pre-LayerNorm,
// causal self-attention, GELU MLP, the final LayerNorm when the chunk ends the model. Shared by the
// model and its plan (gpt_plan.cpp), so both describe the same block.
TransformerBlockOptions gpt_block_options(const GptOptions& o, TpGroup tp, bool sequence_parallel,
                                          std::int64_t first_layer, std::int64_t count, bool ends_model);

// ", rope on 64 channels (base 10000), RMSNorm, SwiGLU, untied output layer, no linear biases" (or
// "" for a GPT-2 block), for describe().
std::string llama_style_description(const GptOptions& o);

// The model's metrics (Model::metric_names): the mixture-of-experts layers' router losses
// (multi-token prediction layers built like a mixture-of-experts last layer included), then each
// multi-token prediction depth's loss. Shared by the model and its plan.
std::vector<std::string> gpt_metric_names(const GptOptions& o);

// Model FLOPs of one training iteration over `sequences` sequences (Megatron-LM's accounting:
// forward + backward, no recompute) — the model's and the plan's figure.
double gpt_flops_per_iteration(const GptOptions& o, std::int64_t sequences);

class GptModel : public Model, public Generator {
 public:
  // parallel null: one process.
  GptModel(const GptOptions& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype = DType::f32);
  FieldSpecs batch_fields() const override;
  std::optional<double> loss_tokens(const Batch& batch) const override;  // the loss_mask's sum
  std::vector<std::string> metric_names() const override { return gpt_metric_names(o_); }
  void collect_parameters(std::vector<Parameter*>& out) override;
  // One tensor crosses every stage boundary: the hidden state (activation_shape).
  StageOutput forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs,
                            int chunk) override;
  std::vector<Tensor> backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int chunk) override;
  std::vector<TensorSpec> stage_boundary(std::int64_t micro_batch_size, int boundary) const override;
  // Hidden state f32 [B, T, C] passed between stages ([B·T/tp, C] under sequence parallelism).
  Shape activation_shape(std::int64_t micro_batch_size) const;
  Generator* generator() override { return this; }
  Tensor next_token_logits(const Tensor& tokens) override;
  SessionStart start_session(const std::vector<std::vector<std::int32_t>>& prompts,
                             std::int64_t capacity = 0) override;
  std::int64_t seq_length() const override { return o_.seq_length; }
  double flops_per_iteration(std::int64_t sequences) const override;
  std::string describe() const override;

 private:
  // First stage (and multi-token prediction): tokens [B,T] → embeddings [B,T,C] (`dropout`
  // applied); under sequence parallelism this rank's token rows [B·T/tp, C]. Positions: undefined
  // → 0 … T − 1 in each row; else each token's (i32 [B·T]: the data's position_ids, a generation
  // step's row positions). embed_backward consumes what it saved.
  Tensor embed(StepContext& ctx, const Tensor& tokens, const Tensor& positions, Dropout& dropout);
  void embed_backward(StepContext& ctx, const Tensor& dx, Dropout& dropout);
  // Inference: the final hidden states of tokens [B,T] (through the final norm), with ctx's cache
  // if any; `positions` undefined: 0 … T − 1.
  Tensor inference_forward(StepContext& ctx, const Tensor& tokens, const Tensor& positions);
  // Logits f32 [B, vocab_size] of hidden rows [B, C] (every tp rank the full vocabulary).
  Tensor head_logits(const Tensor& last);
  friend class GptSession;
  // Last stage: the fused LM head and cross-entropy over the final hidden states [B,T,C] (under
  // sequence parallelism this rank's rows [B·T/tp, C]) against labels and loss_mask [B,T]: the
  // mean loss over the masked tokens and, in training, the gradient of `weight` times it w.r.t. h
  // (h's shape; the head's own gradients are accumulated).
  struct HeadLoss {
    double loss = 0;
    Tensor dh;
  };
  HeadLoss head_loss(StepContext& ctx, const Tensor& h, const Tensor& labels, const Tensor& mask, float weight);
  // Multi-token prediction on the last stage, after the main head: forward saves each depth's run
  // (MtpRun) on ctx's store; backward returns the gradient the depths send to the final hidden states.
  void mtp_forward(StepContext& ctx, const Batch& batch, const Tensor& h, const AttentionInputs& in);
  Tensor mtp_backward(StepContext& ctx);
  // Depth d's layer (the one shared layer under mtp_use_repeated_layer) and its run's step context.
  MtpDepth& mtp_depth(std::size_t d);
  StepContext mtp_context(const StepContext& ctx, ActivationStore& store, std::size_t d) const;
  // Whether this step runs on sequence-parallel token shards.
  bool sequence_parallel(const StepContext& ctx) const;
  void mark_token_shard_grads();

  GptOptions o_;
  std::shared_ptr<const Parallel> parallel_;
  DType compute_dtype_;  // activations and stage boundaries
  TpGroup tp_;
  bool sequence_parallel_ = false;  // the layout asks for it (no effect with tp = 1)
  CpGroup cp_;                      // context parallelism: null with cp = 1
  // The rank's chunks of every sequence field of `batch`, the learned positions' ids made first where
  // the data has none (`batch` itself without context parallelism).
  Batch this_ranks_tokens(const Batch& batch) const;
  bool first_stage_ = true, last_stage_ = true;
  // Model chunks (one without a virtual pipeline): each a block of consecutive layers; the last
  // chunk of the last stage also holds the final LayerNorm.
  std::vector<std::unique_ptr<TransformerBlock>> chunks_;
  // Chunk `c` starts the whole model (embeddings) / ends it (final norm, head, loss).
  bool starts_model(int c) const { return first_stage_ && c == 0; }
  bool ends_model(int c) const { return last_stage_ && c == static_cast<int>(chunks_.size()) - 1; }
  TransformerBlock& chunk(int c);
  // On the first stage the embedding, on the last the tied LM head or the multi-token prediction's
  // embedding (a copy unless also first).
  std::unique_ptr<VocabParallelEmbedding> word_embeddings_;
  // First stage, learned positions only (and a copy on the last with multi-token prediction).
  std::unique_ptr<Parameter> position_embeddings_;
  std::unique_ptr<Parameter> output_layer_;         // last stage, untied head only
  Parameter& head_weight() { return output_layer_ ? *output_layer_ : word_embeddings_->weight(); }
  Dropout embedding_dropout_;
  // Multi-token prediction (last stage): the depths and their embedding dropouts.
  std::vector<std::unique_ptr<MtpDepth>> mtp_;  // mtp_physical_layers() of them
  std::vector<Dropout> mtp_dropouts_;           // the depths' embedding dropouts: mtp_num_layers
};

}  // namespace tessera::gpt
