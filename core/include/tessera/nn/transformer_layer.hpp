// Pre-LayerNorm transformer decoder layer (GPT-2 / Megatron-LM):
//   h = x + dropout(attention(ln1(x)));  y = h + dropout(mlp(ln2(h)))
// Under tensor parallelism (o.attention.tp) attention and MLP split across the group while the
// residual stream, the norms and the dropouts act on replicated activations: the same seed on every
// rank gives the same dropout mask, so nothing depends on tp.
//
// With o.attention.sequence_parallel (and tp > 1) the residual stream, norms and
// dropouts act on this rank's token rows only: x and y are [B·T/tp, C], rows [r·B·T/tp, …) of the
// flattened [B·T, C] (tensor_parallel_region.hpp). Attention and MLP gather the rows on entry and
// reduce-scatter on exit. Each dropout passes its shard's element offset, so its mask is that part
// of the one-process mask; the norms' weight and bias gradients cover only this rank's tokens, so
// they are marked reduce_grad_over_tp (summed over tp by the trainer once per iteration).
#pragma once
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/layer_norm.hpp"
#include "tessera/nn/mlp.hpp"
#include "tessera/nn/self_attention.hpp"

namespace tessera {

struct TransformerLayerOptions {
  AttentionOptions attention;
  std::int64_t ffn_hidden = 0;
  float layernorm_epsilon = 1e-5f;
  float hidden_dropout = 0.0f;
};

class TransformerLayer : public Module {
 public:
  TransformerLayer(const std::string& name, const TransformerLayerOptions& o, std::uint64_t seed,
                   std::int64_t layer_index);
  void collect_parameters(std::vector<Parameter*>& out) override;
  Tensor forward(StepContext& ctx, const Tensor& x) override;
  Tensor backward(StepContext& ctx, const Tensor& dy) override;

 private:
  std::int64_t element_offset(const StepContext& ctx, const Tensor& t) const;

  TpGroup tp_;
  bool sequence_parallel_;
  LayerNorm ln1_;
  SelfAttention attention_;
  Dropout attention_dropout_;
  LayerNorm ln2_;
  Mlp mlp_;
  Dropout mlp_dropout_;
};

}  // namespace tessera
