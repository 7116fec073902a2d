#include "tessera/nn/transformer_layer.hpp"

#include "tessera/ops.hpp"

namespace tessera {

TransformerLayer::TransformerLayer(const std::string& name, const TransformerLayerOptions& o,
                                   std::uint64_t seed, std::int64_t layer_index)
    : ln1_(name + ".ln1", o.attention.hidden, o.layernorm_epsilon),
      attention_(name + ".attention", o.attention, seed),
      attention_dropout_(o.hidden_dropout, static_cast<std::uint64_t>(2 * layer_index + 1)),
      ln2_(name + ".ln2", o.attention.hidden, o.layernorm_epsilon),
      mlp_(name + ".mlp", o.attention.hidden, o.ffn_hidden, o.attention.init_std,
           o.attention.output_init_std, seed, o.attention.tp),
      mlp_dropout_(o.hidden_dropout, static_cast<std::uint64_t>(2 * layer_index + 2)) {}

void TransformerLayer::collect_parameters(std::vector<Parameter*>& out) {
  ln1_.collect_parameters(out);
  attention_.collect_parameters(out);
  ln2_.collect_parameters(out);
  mlp_.collect_parameters(out);
}

Tensor TransformerLayer::forward(StepContext& ctx, const Tensor& x) {
  Tensor a = attention_dropout_.forward(ctx, attention_.forward(ctx, ln1_.forward(ctx, x)));
  ops::add(a, x, a);  // h = x + a, written over a (a is ours)
  Tensor m = mlp_dropout_.forward(ctx, mlp_.forward(ctx, ln2_.forward(ctx, a)));
  ops::add(m, a, m);
  return m;
}

Tensor TransformerLayer::backward(StepContext& ctx, const Tensor& dy) {
  // dh = dy + d(mlp branch)/dh
  Tensor dh = ln2_.backward(ctx, mlp_.backward(ctx, mlp_dropout_.backward(ctx, dy)));
  ops::add(dh, dy, dh);
  Tensor dx = ln1_.backward(ctx, attention_.backward(ctx, attention_dropout_.backward(ctx, dh)));
  ops::add(dx, dh, dx);
  return dx;
}

}  // namespace tessera
