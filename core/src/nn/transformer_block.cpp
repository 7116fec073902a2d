#include "tessera/nn/transformer_block.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// Global layer i's options, with the block's recompute applied.
TransformerLayerOptions layer_options(const TransformerBlockOptions& o, std::int64_t layer) {
  TransformerLayerOptions l = o.layer;
  l.attention.recompute_core = o.recompute.selective(&RecomputeModules::core_attn);
  if (o.mlp_of_layer) l.spec.mlp = o.mlp_of_layer(layer);
  l.recompute_mlp = o.recompute.selective(l.spec.mlp.name == "moe" ? &RecomputeModules::moe : &RecomputeModules::mlp);
  l.recompute_norms = o.recompute.selective(&RecomputeModules::layernorm);
  if (o.window_of_layer) l.attention.window_left = o.window_of_layer(layer);
  if (o.rope_of_layer && !o.rope_of_layer(layer)) l.attention.rotary.dim = 0;
  return l;
}

bool sequence_parallel_built(const TransformerBlockOptions& o) {
  return o.layer.attention.sequence_parallel && tp_size(o.layer.attention.tp) > 1;
}

}  // namespace

TransformerBlock::TransformerBlock(const TransformerBlockOptions& o, std::uint64_t seed) : o_(o) {
  if (o.num_layers < 0 || o.first_layer < 0)
    throw ConfigError(fmt::format("TransformerBlock '{}': {} layers from layer {}", o.name, o.num_layers, o.first_layer));
  for (std::int64_t i = o.first_layer; i < o.first_layer + o.num_layers; ++i)
    layers_.push_back(std::make_unique<TransformerLayer>(o.layer_name ? o.layer_name(i) : fmt::format("{}.{}", o.name, i),
                                                         layer_options(o, i), seed, i));
  segments_ = recompute_segments(o.recompute, layers_.size());
  if (!o.final_norm.empty()) {
    final_norm_ = o.layer.spec.norm.build(o.final_norm, o.layer.attention.hidden, o.layer.layernorm_epsilon);
    if (sequence_parallel_built(o)) {  // applied to this rank's token rows: gradients summed over tp
      std::vector<Parameter*> params;
      final_norm_->collect_parameters(params);
      for (Parameter* p : params) p->reduce_grad_over_tp = true;
    }
  }
}

void TransformerBlock::collect_parameters(std::vector<Parameter*>& out) {
  for (auto& l : layers_) l->collect_parameters(out);
  if (final_norm_) final_norm_->collect_parameters(out);
}

std::string layers_text(std::int64_t first, std::int64_t count) {
  if (count <= 0) return "no layers";
  if (count == 1) return fmt::format("layer {}", first);
  return fmt::format("layers {}–{}", first, first + count - 1);
}

std::string TransformerBlock::describe() const {
  return layers_text(o_.first_layer, static_cast<std::int64_t>(layers_.size()));
}

bool TransformerBlock::sequence_parallel(const StepContext& ctx) const {
  return sequence_parallel_applies(o_.layer.attention.sequence_parallel, o_.layer.attention.tp, ctx);
}

ModuleCost TransformerBlock::cost(const TransformerBlockOptions& o, const CostShape& s) {
  const bool sp = o.layer.attention.sequence_parallel && s.tp > 1;
  const std::int64_t h = o.layer.attention.hidden, rows = s.held_rows(sp);
  // Every layer's cost when they are alike (a chunk without layers may start past the last one).
  const ModuleCost layer = o.layers_differ() ? ModuleCost{} : TransformerLayer::cost(layer_options(o, o.first_layer), s);
  ModuleCost c;
  for (const RecomputeSegment& seg : recompute_segments(o.recompute, static_cast<std::size_t>(o.num_layers))) {
    const auto n = static_cast<std::int64_t>(seg.count);
    ModuleCost part;
    if (o.layers_differ()) {  // each its own
      for (std::int64_t i = 0; i < n; ++i)
        part += TransformerLayer::cost(layer_options(o, o.first_layer + static_cast<std::int64_t>(seg.first) + i), s);
    } else {
      part = layer.times(n);
    }
    if (seg.recompute) {
      part.recompute += part.forward;
      part.ep_recompute += part.ep_forward;
      part.saved_elements = plan_mul(rows, h);  // the segment's input; its layers save into a scratch store
      if (o.recompute.distribute_saved_activations && s.tp > 1 && !sp) {  // 1/tp of it, all-gathered in backward
        part.saved_elements = plan_mul(rows, h) / s.tp;
        part.recompute.all_gather += {1, plan_mul(rows, h)};
      }
    }
    c += part;
  }
  if (o.layer.spec.self_attention == AttentionKind::padded_self) c.saved_elements = plan_add(c.saved_elements, s.tokens());
  if (o.layer.spec.cross_attention) {
    const std::int64_t memory_rows = plan_mul(s.batch, s.memory_seq);
    // The memory and its mask, kept once for every layer; its gradient all-reduced once.
    c.saved_elements = plan_add(c.saved_elements, plan_add(plan_mul(memory_rows, h), memory_rows));
    if (s.tp > 1 && o.num_layers > 0) c.backward.all_reduce += {1, plan_mul(memory_rows, h)};
  }
  if (!o.final_norm.empty()) {
    const ModuleCost norm = o.layer.spec.norm.cost(h, rows);
    c += norm;
    if (sp) c.tp_replicated_grads += {norm.parameter_tensors, norm.parameters};
  }
  return c;
}

Tensor TransformerBlock::forward(StepContext& ctx, const Tensor& x_in, const AttentionInputs& in) {
  // The layers' inputs besides x (undefined where the block has none: nothing held).
  if (ctx.training) ctx.store().save(this, SavedInputs{in.key_mask, in.memory, in.memory_mask, in.first_key});
  Tensor x = x_in;
  for (const RecomputeSegment& seg : segments_) x = forward_segment(ctx, seg, x, in);
  return final_norm_ ? final_norm_->forward(ctx, x) : x;
}

Tensor TransformerBlock::forward_segment(StepContext& ctx, const RecomputeSegment& seg, Tensor x,
                                         const AttentionInputs& in) {
  if (!seg.recompute || !ctx.training) {
    for (std::size_t i = seg.first; i < seg.first + seg.count; ++i) x = layers_[i]->forward(ctx, x, in);
    return x;
  }
  const int tp = tp_size(o_.layer.attention.tp);
  if (o_.recompute.distribute_saved_activations && tp > 1 && !sequence_parallel(ctx)) {
    // This rank's 1/tp of the flattened input (copied: the whole x need not stay alive).
    const std::int64_t part = x.numel() / tp;
    TESSERA_CHECK_SHAPE(part * tp == x.numel(), "{} distribute_saved_activations: input {} does not split into {} parts",
                        o_.name, x.str(), tp);
    Tensor mine = x.new_empty({part});
    ops::copy_2d(x.reshape({x.numel()}), tp_rank(o_.layer.attention.tp) * part, part, mine, 0, part, 1, part);
    ctx.store().save(&seg, DistributedInput{mine, x.shape()});
  } else {
    ctx.store().save(&seg, SavedTensor{x});
  }
  // The same step (dropout masks) into a store dropped after each layer: only x stays.
  for (std::size_t i = seg.first; i < seg.first + seg.count; ++i) {
    ActivationStore scratch;
    StepContext scratch_ctx = ctx.with_store(scratch);
    x = layers_[i]->forward(scratch_ctx, x, in);
  }
  return x;
}

TransformerBlock::Grads TransformerBlock::backward(StepContext& ctx, const Tensor& dy) {
  SavedInputs s = ctx.store().take<SavedInputs>(this);
  AttentionInputs in{s.key_mask, s.memory, s.memory_mask, s.first_key};
  Grads g;
  if (o_.layer.spec.cross_attention) {
    g.dmemory = in.memory.new_zeros(in.memory.shape());
  }
  Tensor dx = final_norm_ ? final_norm_->backward(ctx, dy) : dy;
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it)
    dx = backward_segment(ctx, *it, dx, in, g.dmemory.defined() ? &g.dmemory : nullptr);
  // Every layer added its partial memory gradient (its heads' share): summed over tp once.
  if (g.dmemory.defined() && !layers_.empty()) copy_to_tp_backward(g.dmemory, o_.layer.attention.tp);
  g.dx = dx;
  return g;
}

Tensor TransformerBlock::backward_segment(StepContext& ctx, const RecomputeSegment& seg, Tensor dy,
                                          const AttentionInputs& in, Tensor* dmemory) {
  if (!seg.recompute) {
    for (std::size_t i = seg.first + seg.count; i-- > seg.first;) dy = layers_[i]->backward(ctx, dy, in, dmemory);
    return dy;
  }
  // Rebuild the segment's saved tensors with the same ops on the same input, then the real
  // backward from the scratch store. The recompute forward reports no gradient (it computes none)
  // and saves nothing into the microbatch's store.
  Tensor x;
  if (o_.recompute.distribute_saved_activations && tp_size(o_.layer.attention.tp) > 1 && !sequence_parallel(ctx)) {
    const DistributedInput saved = ctx.store().take<DistributedInput>(&seg);
    Tensor whole = saved.part.new_empty({saved.part.numel() * tp_size(o_.layer.attention.tp)});
    o_.layer.attention.tp->all_gather(saved.part, whole);  // the chunks in rank order: the flattened input
    x = whole.reshape(saved.shape);
  } else {
    x = ctx.store().take<SavedTensor>(&seg).x;
  }
  ActivationStore scratch;
  StepContext scratch_ctx = ctx.with_store(scratch);  // with forward's seq_length (StepContext)
  {
    StepContext recompute_ctx = scratch_ctx;
    recompute_ctx.grad_listener = nullptr;
    for (std::size_t i = seg.first; i < seg.first + seg.count; ++i) x = layers_[i]->forward(recompute_ctx, x, in);
  }
  for (std::size_t i = seg.first + seg.count; i-- > seg.first;) dy = layers_[i]->backward(scratch_ctx, dy, in, dmemory);
  if (!scratch.empty()) throw Error(fmt::format("{} recompute: a layer's backward left saved activations behind", o_.name));
  return dy;
}

}  // namespace tessera
