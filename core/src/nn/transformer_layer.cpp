#include "tessera/nn/transformer_layer.hpp"

#include "tessera/error.hpp"
#include "tessera/nn/recomputed_module.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {
// An MlpSpec of Mlp with the options `adjust` sets (the activation).
MlpSpec mlp_spec(std::string name, void (*adjust)(MlpOptions&)) {
  const auto options = [adjust](MlpOptions o) {
    adjust(o);
    return o;
  };
  return {std::move(name),
          [options](const std::string& layer, const MlpOptions& o, std::uint64_t seed,
                    TpGroup tp) -> std::unique_ptr<Module> {
            return std::make_unique<Mlp>(layer, options(o), seed, std::move(tp));
          },
          [options](const MlpOptions& o, std::int64_t rows, std::int64_t tp) { return Mlp::cost(options(o), rows, tp); },
          /*takes_input_back=*/true};
}
}  // namespace

MlpSpec swiglu_mlp_spec() {
  return mlp_spec("swiglu", [](MlpOptions& o) { o.swiglu = true; });
}

MlpSpec squared_relu_mlp_spec() {
  return mlp_spec("squared_relu", [](MlpOptions& o) { o.squared_relu = true; });
}

MlpSpec moe_mlp_spec(const MoeOptions& moe) {
  return {"moe",
          [moe](const std::string& layer, const MlpOptions& o, std::uint64_t seed, TpGroup tp) -> std::unique_ptr<Module> {
            return std::make_unique<MoeLayer>(layer, o, moe, seed, std::move(tp));
          },
          [moe](const MlpOptions& o, std::int64_t rows, std::int64_t tp) { return MoeLayer::cost(o, moe, rows, tp); }};
}

MlpSpec gelu_mlp_spec() {
  return mlp_spec("gelu", [](MlpOptions&) {});
}

namespace {

const TransformerLayerOptions& checked(const TransformerLayerOptions& o) {
  if (o.spec.self_attention == AttentionKind::cross)
    throw ConfigError("a layer spec's self-attention is causal_self or padded_self; cross-attention is "
                      "LayerSpec::cross_attention");
  if (!o.spec.norm.build || !o.spec.norm.cost || !o.spec.mlp.build || !o.spec.mlp.cost)
    throw ConfigError("a layer spec's norm and MLP need both a build and a cost function");
  return o;
}

// recompute_norms applies to norms that keep their input for their own backward (the layer's copy of
// it for the recompute then costs nothing); another norm's consumers stay as they are.
bool recompute_norms(const TransformerLayerOptions& o) { return o.recompute_norms && o.spec.norm.keeps_input; }

// It reaches the MLP's norm when the MLP can take its input back, or is recomputed whole.
bool recompute_pre_mlp_norm(const TransformerLayerOptions& o) {
  return recompute_norms(o) && (o.recompute_mlp || o.spec.mlp.takes_input_back);
}

std::uint64_t site(const TransformerLayerOptions& o, std::int64_t offset) {
  return o.dropout_site_base + static_cast<std::uint64_t>(offset);
}

AttentionOptions attention_options(const TransformerLayerOptions& o, AttentionKind kind, std::int64_t layer_index) {
  AttentionOptions a = o.attention;
  a.kind = kind;
  a.dropout_site = site(o, ((kind == AttentionKind::cross ? std::int64_t{3} : 2) << 32) + layer_index);
  a.keep_input = !recompute_norms(o);
  return a;
}

MlpOptions mlp_options(const TransformerLayerOptions& o, std::int64_t layer_index) {
  MlpOptions m{o.attention.hidden, o.ffn_hidden, o.attention.init_std, o.attention.output_init_std,
               o.attention.sequence_parallel};
  m.bias = o.attention.bias;
  m.gelu = o.gelu;
  m.glu = o.glu;
  m.layer_index = layer_index;
  // A recomputed MLP runs whole inside RecomputedModule, which takes the input back instead.
  m.keep_input = !(recompute_pre_mlp_norm(o) && !o.recompute_mlp);
  return m;
}

}  // namespace

TransformerLayer::TransformerLayer(const std::string& name, const TransformerLayerOptions& o,
                                   std::uint64_t seed, std::int64_t layer_index)
    : tp_(checked(o).attention.tp),
      sequence_parallel_(o.attention.sequence_parallel),
      residual_post_norm_(o.residual_post_norm),
      recompute_norms_(recompute_norms(o)),
      recompute_pre_mlp_norm_(recompute_pre_mlp_norm(o)),
      norm1_(o.spec.norm.build(name + ".ln1", o.attention.hidden, o.layernorm_epsilon)),
      attention_(name + ".attention", attention_options(o, o.spec.self_attention, layer_index), seed),
      attention_dropout_(o.hidden_dropout, site(o, 2 * layer_index + 1)),
      cross_dropout_(o.hidden_dropout, site(o, (std::int64_t{1} << 32) + layer_index)),
      norm2_(o.spec.norm.build(name + ".ln2", o.attention.hidden, o.layernorm_epsilon)),
      mlp_(o.spec.mlp.build(name + ".mlp", mlp_options(o, layer_index), seed, o.attention.tp)),
      mlp_dropout_(o.hidden_dropout, site(o, 2 * layer_index + 2)) {
  if (o.recompute_mlp) mlp_ = std::make_unique<RecomputedModule>(std::move(mlp_), !recompute_pre_mlp_norm_);
  if (o.spec.cross_attention) {
    cross_norm_ = o.spec.norm.build(name + ".cross_ln", o.attention.hidden, o.layernorm_epsilon);
    cross_attention_ = std::make_unique<Attention>(name + ".cross_attention",
                                                   attention_options(o, AttentionKind::cross, layer_index), seed);
  }
  if (sequence_parallel_ && tp_size(tp_) > 1) {
    std::vector<Parameter*> norms;  // gradients from this rank's tokens only
    norm1_->collect_parameters(norms);
    if (cross_norm_) cross_norm_->collect_parameters(norms);
    norm2_->collect_parameters(norms);
    for (Parameter* p : norms) p->reduce_grad_over_tp = true;
  }
}

void TransformerLayer::collect_parameters(std::vector<Parameter*>& out) {
  norm1_->collect_parameters(out);
  attention_.collect_parameters(out);
  if (cross_attention_) {
    cross_norm_->collect_parameters(out);
    cross_attention_->collect_parameters(out);
  }
  norm2_->collect_parameters(out);
  mlp_->collect_parameters(out);
}

ModuleCost TransformerLayer::cost(const TransformerLayerOptions& o, const CostShape& s) {
  checked(o);
  const bool sp = o.attention.sequence_parallel && s.tp > 1;
  const std::int64_t h = o.attention.hidden, rows = s.held_rows(sp);
  const ModuleCost norm = o.spec.norm.cost(h, rows);
  ModuleCost c = norm;
  c += Attention::cost(attention_options(o, o.spec.self_attention, 0), s);
  if (o.spec.cross_attention) {
    c += norm;
    c += Attention::cost(attention_options(o, AttentionKind::cross, 0), s);
  }
  c += norm;
  const ModuleCost mlp = o.spec.mlp.cost(mlp_options(o, -1), s.tokens(), s.tp);
  // Recomputed norms' outputs: the norms keep their inputs anyway, so the layer's copy costs nothing.
  c += o.recompute_mlp ? RecomputedModule::cost(mlp, recompute_pre_mlp_norm(o) ? 0 : plan_mul(rows, h)) : mlp;
  if (sp) {
    const std::int64_t norms = o.spec.cross_attention ? 3 : 2;
    c.tp_replicated_grads += {plan_mul(norms, norm.parameter_tensors), plan_mul(norms, norm.parameters)};
  }
  return c;
}

// Where this rank's token rows sit in the one-process [B·T, C], for the dropout masks: under
// sequence parallelism rank r's shard of n rows starts at row r·n of the rank's rows, and under
// context parallelism those are pieces of the one-process rows.
TokenRows TransformerLayer::token_rows(const StepContext& ctx, const Tensor& t) const {
  const std::int64_t n = t.numel() / t.size(t.dim() - 1);
  return TokenRows::of(ctx, sequence_parallel_applies(sequence_parallel_, tp_, ctx) ? tp_rank(tp_) * n : 0);
}

Tensor TransformerLayer::forward(StepContext& ctx, const Tensor& x, const AttentionInputs& in) {
  const TokenRows rows = token_rows(ctx, x);
  // residual + dropout(sublayer(norm(input))), the residual being the input or (residual_post_norm)
  // the norm's output; written over the sublayer's output (ours). A recomputed norm's input is kept
  // under the norm's slot (&norm1_ …): the same tensor the norm keeps, no extra memory.
  const auto sublayer = [&](const std::unique_ptr<Module>& norm, bool recomputed, const auto& run, Dropout& dropout,
                            const Tensor& input) {
    const Tensor normed = norm->forward(ctx, input);
    if (recomputed && ctx.training) ctx.store().save(&norm, SavedTensor{input});
    Tensor out = dropout.forward(ctx, run(normed), rows);
    ops::add(out, residual_post_norm_ ? normed : input, out);
    return out;
  };
  Tensor h = sublayer(norm1_, recompute_norms_, [&](const Tensor& t) { return attention_.forward(ctx, t, in); },
                      attention_dropout_, x);
  if (cross_attention_)
    h = sublayer(cross_norm_, recompute_norms_, [&](const Tensor& t) { return cross_attention_->forward(ctx, t, in); },
                 cross_dropout_, h);
  return sublayer(norm2_, recompute_pre_mlp_norm_, [&](const Tensor& t) { return mlp_->forward(ctx, t); }, mlp_dropout_,
                  h);
}

Tensor TransformerLayer::backward(StepContext& ctx, const Tensor& dy, const AttentionInputs& in, Tensor* dmemory) {
  const TokenRows rows = token_rows(ctx, dy);
  // d(input) = norm'ᵀ(d(sublayer branch) [+ dy with residual_post_norm]) [+ dy otherwise]. A
  // recomputed norm runs forward again (into a scratch store: the same op on the same input, a
  // bit-identical output) for its consumer's backward, which gets it as `normed`.
  const auto sublayer = [&](const std::unique_ptr<Module>& norm, bool recomputed, const auto& run, Dropout& dropout,
                            const Tensor& d_out) {
    Tensor normed;
    if (recomputed) {
      ActivationStore scratch;
      StepContext again = ctx.with_store(scratch);
      normed = norm->forward(again, ctx.store().take<SavedTensor>(&norm).x);
    }
    Tensor d_normed = run(dropout.backward(ctx, d_out, rows), normed);
    if (residual_post_norm_) ops::add(d_normed, d_out, d_normed);
    Tensor d_input = norm->backward(ctx, d_normed);
    if (!residual_post_norm_) ops::add(d_input, d_out, d_input);
    return d_input;
  };
  Tensor dh = sublayer(
      norm2_, recompute_pre_mlp_norm_,
      [&](const Tensor& t, const Tensor& x) { return x.defined() ? mlp_->backward_with_input(ctx, t, x) : mlp_->backward(ctx, t); },
      mlp_dropout_, dy);
  if (cross_attention_)
    dh = sublayer(cross_norm_, recompute_norms_,
                  [&](const Tensor& t, const Tensor& x) { return cross_attention_->backward(ctx, t, in, dmemory, x); },
                  cross_dropout_, dh);
  return sublayer(norm1_, recompute_norms_,
                  [&](const Tensor& t, const Tensor& x) { return attention_.backward(ctx, t, in, nullptr, x); },
                  attention_dropout_, dh);
}

}  // namespace tessera
