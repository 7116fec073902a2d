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
// dp and distributed_adam are the trainer's. Sequence parallelism and pipeline splits are refused
// (t5_options.cpp says why).
//
// The encoder and decoder inputs are embedded in one lookup (the encoder's rows, then the
// decoder's), so the shared table's forward, its tp all-reduce and its backward run once per
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

// The encoder's (padded self-attention) or decoder's (causal + cross-attention) layers. The output
// projections' init is scaled by num_layers (the encoder's depth), as Megatron-LM's T5.
TransformerBlockOptions t5_block_options(const T5Options& o, TpGroup tp, bool decoder);
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
  struct SavedEmbedding {  // the position ids of the encoder's then the decoder's rows
    Tensor positions;
    std::vector<Tensor> tensors() const { return {positions}; }
  };
  // Encoder and decoder tokens → their embeddings (one lookup): [B,Te,C] and [B,Td,C].
  std::pair<Tensor, Tensor> embed(StepContext& ctx, const Tensor& enc_tokens, const Tensor& dec_tokens);
  void embed_backward(StepContext& ctx, const Tensor& d_enc, const Tensor& d_dec);
  // The tied head with its bias over the decoder's final hidden states; training: dh kept for backward.
  double head_loss(StepContext& ctx, const Tensor& h, const Batch& batch);

  T5Options o_;
  std::shared_ptr<const Parallel> parallel_;
  DType compute_dtype_;
  TpGroup tp_;
  std::unique_ptr<VocabParallelEmbedding> word_embeddings_;
  Parameter position_embeddings_;
  Dropout embedding_dropout_;
  std::unique_ptr<TransformerBlock> encoder_, decoder_;
  Parameter lm_bias_;  // this rank's vocabulary shard, like the word embedding
};

}  // namespace tessera::t5
