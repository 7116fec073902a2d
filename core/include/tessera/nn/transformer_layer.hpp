// Pre-norm transformer layer (GPT-2 / Megatron-LM), its sublayers picked by a LayerSpec; parameter
// names in brackets:
//   h = x + dropout(self_attention(norm1(x)))                   [ln1, attention]
//   h = h + dropout(cross_attention(cross_norm(h), memory))     [cross_ln, cross_attention] (spec.cross_attention)
//   y = h + dropout(mlp(norm2(h)))                              [ln2, mlp]
// With residual_post_norm (Megatron-LM's --apply-residual-connection-post-layernorm) each sublayer
// adds its norm's output instead of its input: h = norm1(x) + dropout(self_attention(norm1(x))), ….
// The self-attention is causal (GPT) or padding-masked (BERT, T5's encoder); cross-attention adds a
// second input, the memory (T5's decoder). The norm and the MLP are factories with a cost (NormSpec,
// MlpSpec): LayerNorm and the GELU MLP by default, and a plugin may hand in its own modules
// (RMSNorm, SwiGLU …) without touching core.
//
// Under tensor parallelism (o.attention.tp) attention and MLP split across the group while the
// residual stream, the norms and the dropouts act on replicated activations: the same seed on every
// rank gives the same dropout mask, so nothing depends on tp.
//
// With o.attention.sequence_parallel (and tp > 1) the residual stream, norms and
// dropouts act on this rank's token rows only: x and y are [B·T/tp, C], rows [r·B·T/tp, …) of the
// flattened [B·T, C] (tensor_parallel_region.hpp). Attention and MLP gather the rows on entry and
// reduce-scatter on exit. Each dropout passes its shard's element offset, so its mask is that part
// of the one-process mask; the norms' parameter gradients cover only this rank's tokens, so they
// are marked reduce_grad_over_tp (summed over tp by the trainer once per iteration).
#pragma once
#include <functional>
#include <memory>

#include "tessera/nn/attention.hpp"
#include "tessera/nn/dropout.hpp"
#include "tessera/nn/mlp.hpp"
#include "tessera/nn/moe.hpp"
#include "tessera/nn/norm_spec.hpp"

namespace tessera {

// A layer's MLP: built from MlpOptions on a tp group; its cost over `rows` token rows on one of tp ranks.
struct MlpSpec {
  std::string name;  // "gelu"
  std::function<std::unique_ptr<Module>(const std::string& name, const MlpOptions& o, std::uint64_t seed, TpGroup tp)>
      build;
  std::function<ModuleCost(const MlpOptions& o, std::int64_t rows, std::int64_t tp)> cost;
  // Its module honours MlpOptions::keep_input = false (Module::backward_with_input), so
  // recompute_modules "layernorm" can drop its norm's output.
  bool takes_input_back = false;
};
MlpSpec gelu_mlp_spec();     // Mlp: fc1 → GELU (tanh) → fc2
// Mlp: fc1 (C → 2·ffn) → silu(x0)·x1 → fc2 (Llama, Megatron-Core's order), or the gated linear
// unit TransformerLayerOptions::glu names.
MlpSpec swiglu_mlp_spec();
MlpSpec squared_relu_mlp_spec();  // Mlp: fc1 → max(x, 0)² → fc2 (Megatron's --squared-relu; Nemotron-4)
MlpSpec moe_mlp_spec(const MoeOptions& moe);  // MoeLayer: top-k routed experts (nn/moe.hpp)

struct LayerSpec {
  AttentionKind self_attention = AttentionKind::causal_self;  // causal_self or padded_self
  bool cross_attention = false;                               // a second attention, over the memory
  NormSpec norm = layer_norm_spec();
  MlpSpec mlp = gelu_mlp_spec();
};

struct TransformerLayerOptions {
  LayerSpec spec;
  // Sizes, tp, sequence parallelism, selective recompute (kind: from spec), rotary positions; its
  // `bias` (add_bias_linear) also sets the MLP's.
  AttentionOptions attention;
  std::int64_t ffn_hidden = 0;
  float layernorm_epsilon = 1e-5f;
  float hidden_dropout = 0.0f;
  bool residual_post_norm = false;  // the residuals are the norms' outputs (header comment)
  ops::GeluForm gelu = ops::GeluForm::tanh;  // the GELU MLP's form
  GatedLinearUnit glu{};  // the gated MLP's unit (SwiGLU unless changed)
  // Selective recompute of the whole MLP (recompute_modules "mlp" for a dense one, "moe" for a
  // mixture of experts; RecomputedModule): only its input is kept.
  bool recompute_mlp = false;
  // Selective recompute of the norms' outputs (recompute_modules "layernorm"): the attention's and
  // cross-attention's projections, and the MLP's first linear (or a recomputed MLP), keep no copy of
  // their norm's output; backward runs the norm again on its input, which the norm keeps anyway.
  // An MLP whose spec does not take its input back (a mixture of experts) and is not recomputed
  // whole keeps its input, so its norm's output is kept (recompute_pre_mlp_norm); so does a norm
  // whose spec does not keep its input (NormSpec::keeps_input).
  bool recompute_norms = false;
  // Dropout sites of layer i: dropout_site_base + 2i + 1 (attention), + 2i + 2 (MLP), and
  // dropout_site_base + 2^32 + i (cross-attention); the attention probabilities' (attention.dropout):
  // dropout_site_base + 2·2^32 + i (self), + 3·2^32 + i (cross). Two blocks of one model (T5's encoder and
  // decoder) take different bases so that their masks differ.
  std::uint64_t dropout_site_base = 0;
};

class TransformerLayer : public Module {
 public:
  TransformerLayer(const std::string& name, const TransformerLayerOptions& o, std::uint64_t seed,
                   std::int64_t layer_index);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [B,T,C] (sequence parallel: [B·T/tp, C]); `in`: the key mask of padded self-attention, the
  // memory (and its mask) of cross-attention. Backward takes the same `in`; with cross-attention it
  // adds this rank's partial memory gradient into *dmemory (not reduced over tp).
  Tensor forward(StepContext& ctx, const Tensor& x, const AttentionInputs& in);
  Tensor backward(StepContext& ctx, const Tensor& dy, const AttentionInputs& in, Tensor* dmemory);
  Tensor forward(StepContext& ctx, const Tensor& x) override { return forward(ctx, x, {}); }
  Tensor backward(StepContext& ctx, const Tensor& dy) override { return backward(ctx, dy, {}, nullptr); }

  // On shape s. Cross-attention's memory is counted by the block, not here.
  static ModuleCost cost(const TransformerLayerOptions& o, const CostShape& s);

 private:
  TokenRows token_rows(const StepContext& ctx, const Tensor& t) const;

  TpGroup tp_;
  bool sequence_parallel_;
  bool residual_post_norm_;
  bool recompute_norms_, recompute_pre_mlp_norm_;  // recompute_norms; and it for norm2_
  std::unique_ptr<Module> norm1_;
  Attention attention_;
  Dropout attention_dropout_;
  std::unique_ptr<Module> cross_norm_;
  std::unique_ptr<Attention> cross_attention_;
  Dropout cross_dropout_;
  std::unique_ptr<Module> norm2_;
  std::unique_ptr<Module> mlp_;
  Dropout mlp_dropout_;
};

}  // namespace tessera
