#include "tessera/nn/transformer_layer.hpp"

#include "tessera/ops.hpp"

namespace tessera {

TransformerLayer::TransformerLayer(const std::string& name, const TransformerLayerOptions& o,
                                   std::uint64_t seed, std::int64_t layer_index)
    : tp_(o.attention.tp),
      sequence_parallel_(o.attention.sequence_parallel),
      ln1_(name + ".ln1", o.attention.hidden, o.layernorm_epsilon),
      attention_(name + ".attention", o.attention, seed),
      attention_dropout_(o.hidden_dropout, static_cast<std::uint64_t>(2 * layer_index + 1)),
      ln2_(name + ".ln2", o.attention.hidden, o.layernorm_epsilon),
      mlp_(name + ".mlp", o.attention.hidden, o.ffn_hidden, o.attention.init_std,
           o.attention.output_init_std, seed, o.attention.tp, o.attention.sequence_parallel),
      mlp_dropout_(o.hidden_dropout, static_cast<std::uint64_t>(2 * layer_index + 2)) {
  if (sequence_parallel_ && tp_size(tp_) > 1) {
    std::vector<Parameter*> norms;  // gradients from this rank's tokens only
    ln1_.collect_parameters(norms);
    ln2_.collect_parameters(norms);
    for (Parameter* p : norms) p->reduce_grad_over_tp = true;
  }
}

void TransformerLayer::collect_parameters(std::vector<Parameter*>& out) {
  ln1_.collect_parameters(out);
  attention_.collect_parameters(out);
  ln2_.collect_parameters(out);
  mlp_.collect_parameters(out);
}

// Where this rank's activation starts in the one-process [B·T, C] (0 unless sequence parallel):
// rank r's shard of n·C elements starts at r·n·C.
std::int64_t TransformerLayer::element_offset(const StepContext& ctx, const Tensor& t) const {
  return sequence_parallel_applies(sequence_parallel_, tp_, ctx) ? tp_rank(tp_) * t.numel() : 0;
}

Tensor TransformerLayer::forward(StepContext& ctx, const Tensor& x) {
  const std::int64_t offset = element_offset(ctx, x);
  Tensor a = attention_dropout_.forward(ctx, attention_.forward(ctx, ln1_.forward(ctx, x)), offset);
  ops::add(a, x, a);  // h = x + a, written over a (a is ours)
  Tensor m = mlp_dropout_.forward(ctx, mlp_.forward(ctx, ln2_.forward(ctx, a)), offset);
  ops::add(m, a, m);
  return m;
}

Tensor TransformerLayer::backward(StepContext& ctx, const Tensor& dy) {
  const std::int64_t offset = element_offset(ctx, dy);
  // dh = dy + d(mlp branch)/dh
  Tensor dh = ln2_.backward(ctx, mlp_.backward(ctx, mlp_dropout_.backward(ctx, dy, offset)));
  ops::add(dh, dy, dh);
  Tensor dx = ln1_.backward(ctx, attention_.backward(ctx, attention_dropout_.backward(ctx, dh, offset)));
  ops::add(dx, dh, dx);
  return dx;
}

}  // namespace tessera
