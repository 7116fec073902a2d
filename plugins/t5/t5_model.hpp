// T5 as Megatron-LM builds it (megatron/model/t5_model.py, language_model.py, transformer.py):
// - one word-embedding table (vocab-parallel under tp) embeds the encoder input, the decoder input
//   and is the output layer (Megatron-LM refuses untied weights for encoder-decoders);
// - one learned position table of max_position_embeddings rows, shared by encoder and decoder
//   (positions 0… in each), then embedding dropout;
// - encoder: pre-LayerNorm layers with padding-masked self-attention (enc_padding_mask), its own
//   final LayerNorm;
// - decoder: pre-LayerNorm layers with causal self-attention, cross-attention on the encoder output
//   (keys masked by the encoder padding) and the MLP, its own final LayerNorm;
// - LM head: logits against the tied embedding + a per-vocabulary bias (vocab-parallel, zero-init);
//   loss = Σ loss·mask / Σ mask over decoder positions, labels −1 ignored.
//
// Keys ([model]): GPT's (num_layers, hidden_size, num_attention_heads, ffn_hidden_size, seq_length,
// max_position_embeddings, hidden_dropout, init_method_std, layernorm_epsilon,
// make_vocab_size_divisible_by, recompute_*), with encoder_num_layers / encoder_seq_length as
// aliases of num_layers / seq_length (Megatron-LM's), decoder_num_layers (default: the encoder's)
// and decoder_seq_length (required). docs/t5.md.
//
// Parallelism: tp splits heads (self and cross), ffn and the vocabulary (the head's bias with it);
// dp and distributed_adam are the trainer's. Pipeline parallelism splits at
// parallel.pipeline_model_parallel_split_rank R as Megatron-LM: stages [0, R) hold the encoder's
// layers, [R, pp) the decoder's (T5StageLayout). Stage 0 embeds the encoder input, stage R the
// decoder input, the last stage holds the head: each of the three holds the word and the position
// table (the last's position copy is unused, its gradient zero) as Parameter::stage_tie copies, so
// the embedding group {0, R, last} keeps them equal. Decoder stages pass [decoder hidden, encoder
// output]: each uses the encoder output and forwards it unchanged, adding its own cross-attention
// gradient to the one coming back. Sequence parallelism and the interleaved schedule are refused
// (t5_options.cpp says why).
//
// On one stage the encoder and decoder inputs are embedded in one lookup (the encoder's rows, then
// the decoder's), so the shared table's forward, its tp all-reduce and its backward run once per
// microbatch. The head's backward runs in forward (the loss is known there), as GPT's.
#pragma once
#include <memory>
#include <vector>

#include "tessera/nn/transformer_options.hpp"
#include "tessera/model.hpp"
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"

namespace tessera::t5 {

struct T5Options {
  TransformerOptions t;  // sizes, dropout, init, recompute; t.seq_length is the encoder's, t.num_layers its depth
  std::int64_t encoder_num_layers = 2, decoder_num_layers = 2;
  std::int64_t decoder_seq_length = 128;
};

// What one pipeline stage holds (pp = 1: everything). A stack part with count 0 is absent.
struct T5StackPart {
  std::int64_t first_layer = 0, count = 0;
  bool ends_stack = false;  // the stack's final LayerNorm is here
};
struct T5StageLayout {
  T5StackPart encoder, decoder;
  bool embeds_encoder = false, embeds_decoder = false;  // looks up the encoder's / decoder's tokens
  bool head = false;                                    // the LM head and the loss (the last stage)
  // The word and position tables: on the stages that embed and on the head's (tied copies when pp > 1).
  bool holds_embeddings() const { return embeds_encoder || embeds_decoder || head; }
};
// Stage `stage` of `pp` split at `split_rank` (0 when pp = 1); read_t5_options checked the sizes.
T5StageLayout t5_stage_layout(const T5Options& o, int stage, int pp, int split_rank);

// The encoder's (padded self-attention) or decoder's (causal + cross-attention) layers `part`. The
// output projections' init is scaled by num_layers (the encoder's depth), as Megatron-LM's T5.
TransformerBlockOptions t5_block_options(const T5Options& o, TpGroup tp, bool decoder, const T5StackPart& part);
// What pipeline boundary `boundary` (between stages boundary and boundary + 1) carries: the encoder's
// hidden state [b, Se, h] before the split, [decoder hidden [b, Sd, h], encoder output [b, Se, h]] after.
std::vector<Shape> t5_boundary_shapes(const T5Options& o, int split_rank, std::int64_t micro_batch_size, int boundary);
double t5_flops_per_iteration(const T5Options& o, std::int64_t sequences);

class T5Model : public Model {
 public:
  T5Model(const T5Options& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype = DType::f32);
  FieldSpecs batch_fields() const override;
  void collect_parameters(std::vector<Parameter*>& out) override;
  StageOutput forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs,
                            int chunk) override;
  std::vector<Tensor> backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int chunk) override;
  std::vector<TensorSpec> stage_boundary(std::int64_t micro_batch_size, int boundary) const override;
  std::int64_t seq_length() const override { return o_.t.seq_length; }
  std::int64_t decoder_seq_length() const override { return o_.decoder_seq_length; }
  double flops_per_iteration(std::int64_t sequences) const override;
  std::string describe() const override;

 private:
  struct SavedEmbedding {  // the position ids of the rows looked up (the encoder's, then the decoder's)
    Tensor positions;
    std::int64_t dropout_first_row = 0;  // where the rows start in the dropout mask's [B·(Se + Sd), C]
    std::vector<Tensor> tensors() const { return {positions}; }
  };
  // The tokens of this stage's embedding lookups (null: not embedded here) → their embeddings, in
  // one lookup: [B,Te,C] and [B,Td,C] (undefined for a null).
  std::pair<Tensor, Tensor> embed(StepContext& ctx, const Tensor* enc_tokens, const Tensor* dec_tokens);
  // The gradients of what embed() returned (undefined for what it did not embed).
  void embed_backward(StepContext& ctx, const Tensor& d_enc, const Tensor& d_dec);
  // The pipeline input i of this stage, checked against the boundary before it.
  const Tensor& stage_input(const std::vector<Tensor>& inputs, std::size_t i, std::int64_t micro_batch_size) const;
  // The tied head with its bias over the decoder's final hidden states; training: dh kept for backward.
  double head_loss(StepContext& ctx, const Tensor& h, const Batch& batch);

  T5Options o_;
  std::shared_ptr<const Parallel> parallel_;
  DType compute_dtype_;
  TpGroup tp_;
  int stage_ = 0, pp_ = 1, split_rank_ = 0;
  T5StageLayout layout_;
  std::unique_ptr<VocabParallelEmbedding> word_embeddings_;  // with the position table: holds_embeddings()
  std::unique_ptr<Parameter> position_embeddings_;
  Dropout embedding_dropout_;
  std::unique_ptr<TransformerBlock> encoder_, decoder_;  // this stage's parts
  std::unique_ptr<Parameter> lm_bias_;  // the head's stage: this rank's vocabulary shard, like the word embedding
};

}  // namespace tessera::t5
