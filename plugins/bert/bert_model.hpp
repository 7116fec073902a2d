// BERT as Megatron-LM builds it (megatron/model/bert_model.py): word + learned position (+ token
// type, with the binary head) embeddings, pre-LayerNorm encoder layers with padding-masked
// self-attention and a final LayerNorm, then two heads on the last stage:
// - the LM head: dense → GELU → LayerNorm → logits against the tied word embedding + a
//   per-vocabulary bias, the masked-LM loss over the masked positions (Σ loss·mask / Σ mask);
// - with bert_binary_head (Megatron's default): the pooler (dense → tanh on the [CLS] token) and the
//   sentence-order head (a 2-way linear), its cross-entropy averaged over the batch.
// The loss is their sum; both terms are logged ('lm loss', 'sop loss').
//
// Parallelism as GPT's (gpt_model.hpp): tp splits heads, ffn and the vocabulary (the LM head's
// bias with it); sp runs the encoder on token shards; pp splits the layers (virtual pipelines
// too), the last stage keeping a tied copy of the word embedding. The heads' dense layers, norms and
// the pooler are replicated over tp and computed on whole rows on every tp rank (under sp after an
// all-gather), so their gradients are equal on every rank with no reduction; the LM head's input
// gradient, partial per vocabulary shard, is all-reduced over tp before the head's LayerNorm.
// Like GPT's, the heads' backward runs in forward (the loss is known there) and is kept for backward.
#pragma once
#include <memory>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/nn/transformer_block.hpp"
#include "tessera/nn/transformer_options.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"

namespace tessera::bert {

struct BertOptions {
  TransformerOptions t;     // sizes, dropout, init, recompute (the keys GPT reads)
  bool binary_head = true;  // bert_binary_head: pooler + sentence-order loss, and token types
};

TransformerBlockOptions bert_block_options(const BertOptions& o, TpGroup tp, bool sequence_parallel,
                                           std::int64_t first_layer, std::int64_t count, bool ends_model);
double bert_flops_per_iteration(const BertOptions& o, std::int64_t sequences);

class BertModel : public Model {
 public:
  BertModel(const BertOptions& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype = DType::f32);
  ~BertModel() override;
  FieldSpecs batch_fields() const override;
  void collect_parameters(std::vector<Parameter*>& out) override;
  StageOutput forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs,
                            int chunk) override;
  std::vector<Tensor> backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int chunk) override;
  std::vector<TensorSpec> stage_boundary(std::int64_t micro_batch_size, int boundary) const override;
  std::int64_t seq_length() const override { return o_.t.seq_length; }
  std::vector<std::string> loss_part_names() const override;
  // Token types 0 then 1 (two segments), sentence-order labels 0 or 1, every position predicted.
  Batch example_batch(std::int64_t micro_batch_size, std::int64_t vocab_size, std::uint64_t seed) const override;
  double flops_per_iteration(std::int64_t sequences) const override;
  std::string describe() const override;

 private:
  struct Heads;  // the last stage's LM head, pooler and binary head (bert_heads.cpp)
  struct HeadLosses {
    double lm = 0, sop = 0;
  };
  Shape activation_shape(std::int64_t micro_batch_size) const;
  Tensor embed(StepContext& ctx, const Batch& batch);
  void embed_backward(StepContext& ctx, Tensor dx);
  // The heads over the final hidden states; training: their backward too, dh kept for backward_stage.
  HeadLosses head_losses(StepContext& ctx, const Tensor& h, const Batch& batch);
  bool sequence_parallel(const StepContext& ctx) const;
  bool starts_model(int c) const { return first_stage_ && c == 0; }
  bool ends_model(int c) const { return last_stage_ && c == static_cast<int>(chunks_.size()) - 1; }
  TransformerBlock& chunk(int c);

  BertOptions o_;
  std::shared_ptr<const Parallel> parallel_;
  DType compute_dtype_;
  TpGroup tp_;
  bool sequence_parallel_ = false;
  bool first_stage_ = true, last_stage_ = true;
  std::vector<std::unique_ptr<TransformerBlock>> chunks_;
  std::unique_ptr<VocabParallelEmbedding> word_embeddings_;  // first stage; the last keeps a tied copy
  std::unique_ptr<Parameter> position_embeddings_, tokentype_embeddings_;  // first stage
  Dropout embedding_dropout_;
  std::unique_ptr<Heads> heads_;  // last stage
};

}  // namespace tessera::bert
