// GPT: learned token and position embeddings, pre-LayerNorm decoder layers with causal attention
// (num_query_groups: MHA, GQA or MQA), a final LayerNorm and an LM head tied to the token embedding.
//
// The LM head and the cross-entropy are fused and chunked over rows: each chunk's logits are
// computed, turned into their gradient in place and consumed at once (dx and dW of the head), so
// the [B·T, V] logits never exist whole and are written once. That needs the loss gradient scale
// at forward time (StepContext::loss_grad_scale), which the schedule knows.
//
// Tensor parallelism (ModelContext::parallel's tp group): attention heads, the MLP's ffn and the
// vocabulary are split across the group (see docs/parallelism.md); the embedding table is
// vocab-parallel, so the tied head computes only this rank's vocabulary columns of each chunk of
// logits, the cross-entropy combines per-row statistics over tp (vocab_parallel_cross_entropy) and
// the head's input gradient, partial per rank, is all-reduced once after the last chunk.
#pragma once
#include <memory>
#include <vector>

#include "tessera/model.hpp"
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/transformer_layer.hpp"
#include "tessera/nn/vocab_parallel_embedding.hpp"

namespace tessera::gpt {

struct GptOptions {
  std::int64_t num_layers = 2, hidden_size = 64, num_attention_heads = 4, num_query_groups = 0;
  std::int64_t ffn_hidden_size = 0;  // 0 → 4·hidden
  std::int64_t seq_length = 64, max_position_embeddings = 0;  // 0 → seq_length
  std::int64_t vocab_size = 0, padded_vocab_size = 0;
  float hidden_dropout = 0.0f, init_method_std = 0.02f, layernorm_epsilon = 1e-5f;
  std::uint64_t seed = 1234;
};

class GptModel : public Model {
 public:
  // parallel null: one process.
  GptModel(const GptOptions& o, std::shared_ptr<const Parallel> parallel);
  void collect_parameters(std::vector<Parameter*>& out) override;
  double forward_loss(StepContext& ctx, const Batch& batch) override;
  void backward(StepContext& ctx) override;
  Tensor next_token_logits(const Tensor& tokens) override;
  std::int64_t seq_length() const override { return o_.seq_length; }
  double flops_per_iteration(std::int64_t sequences) const override;
  std::string describe() const override;

 private:
  // tokens [B,T] → final hidden states [B,T,C] (after ln_f).
  Tensor hidden_states(StepContext& ctx, const Tensor& tokens);

  GptOptions o_;
  std::shared_ptr<const Parallel> parallel_;
  TpGroup tp_;
  VocabParallelEmbedding word_embeddings_;
  Parameter position_embeddings_;
  Dropout embedding_dropout_;
  std::vector<std::unique_ptr<TransformerLayer>> layers_;
  LayerNorm final_norm_;
};

}  // namespace tessera::gpt
