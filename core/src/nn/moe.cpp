#include "tessera/nn/moe.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// What backward needs: the routed tokens, and per expert its token ids, weights and (partial) output.
struct MoeSaved {
  Tensor x;  // [N, C], every token row
  MoeRouting routing;
  std::vector<Tensor> ids, weights, outputs;  // per expert; undefined for an expert without tokens
  std::vector<Tensor> tensors() const {
    std::vector<Tensor> all{x};
    for (const auto* list : {&ids, &weights, &outputs})
      for (const Tensor& t : *list)
        if (t.defined()) all.push_back(t);
    return all;
  }
};


// A host vector as a tensor on `like`'s device.
template <typename T>
Tensor on_device(const std::vector<T>& values, const Tensor& like) {
  return Tensor::from<T>({static_cast<std::int64_t>(values.size())}, values).to(like.device());
}

}  // namespace

std::vector<std::string> moe_metric_names(const MoeOptions& moe) {
  std::vector<std::string> names;
  if (moe.router.experts == 0) return names;
  if (moe.router.load_balancing) names.push_back(moe.router.per_sequence ? kSeqLoadBalancingLoss : kLoadBalancingLoss);
  if (moe.router.z_loss_coeff > 0) names.push_back(kZLoss);
  return names;
}

MlpOptions MoeLayer::expert_options(const MlpOptions& layer, const MoeOptions& moe, std::int64_t ffn) {
  MlpOptions e = layer;
  e.ffn_hidden = ffn;
  e.swiglu = moe.swiglu;
  e.squared_relu = moe.squared_relu;
  e.sequence_parallel = false;  // the layer gathers the rows once for all experts
  e.reduce = false;             // and reduces once
  return e;
}

MoeLayer::MoeLayer(const std::string& name, const MlpOptions& layer, const MoeOptions& moe, std::uint64_t seed,
                   TpGroup tp)
    : hidden_(layer.hidden),
      sequence_parallel_(layer.sequence_parallel),
      moe_(moe),
      tp_(std::move(tp)),
      router_(name + ".router.weight", {moe.router.experts, layer.hidden}) {
  if (moe.router.experts < 1 || moe.router.topk < 1 || moe.router.topk > moe.router.experts)
    throw ConfigError(fmt::format("{}: {} experts with top-{} routing (topk must be in [1, experts])", name,
                                  moe.router.experts, moe.router.topk));
  init_normal(router_.value, layer.init_std, seed, router_.name);
  const MlpOptions e = expert_options(layer, moe, moe.ffn_hidden);
  for (std::int64_t i = 0; i < moe.router.experts; ++i)
    experts_.push_back(std::make_unique<Mlp>(fmt::format("{}.experts.{}", name, i), e, seed, tp_));
  if (moe.shared_ffn_hidden > 0)
    shared_ = std::make_unique<Mlp>(name + ".shared_expert", expert_options(layer, moe, moe.shared_ffn_hidden), seed, tp_);
}

void MoeLayer::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&router_);
  for (auto& e : experts_) e->collect_parameters(out);
  if (shared_) shared_->collect_parameters(out);
}

ModuleCost MoeLayer::cost(const MlpOptions& layer, const MoeOptions& moe, std::int64_t rows, std::int64_t tp) {
  const std::int64_t E = moe.router.experts, routed = plan_mul(rows, moe.router.topk), C = layer.hidden;
  const MlpOptions eo = expert_options(layer, moe, moe.ffn_hidden);
  const ModuleCost expert = Mlp::cost(eo, routed, tp);  // all routed rows through "one" expert
  ModuleCost c;
  c.parameters = plan_add(plan_mul(E, C), plan_mul(E, Mlp::cost(eo, 0, tp).parameters));
  c.parameter_tensors = 1 + E * expert.parameter_tensors;
  // Every token row, the experts' saved tensors for rows·k rows, their outputs, ids and weights.
  c.saved_elements = plan_add(plan_add(plan_mul(rows, C), expert.saved_elements),
                              plan_add(plan_mul(routed, C), plan_mul(routed, 2)));
  if (moe.shared_ffn_hidden > 0) {  // every row; its input is the rows kept above (held once)
    const ModuleCost shared = Mlp::cost(expert_options(layer, moe, moe.shared_ffn_hidden), rows, tp);
    c.parameters = plan_add(c.parameters, shared.parameters);
    c.parameter_tensors += shared.parameter_tensors;
    c.saved_elements = plan_add(c.saved_elements, shared.saved_elements - plan_mul(rows, C));
  }
  if (tp == 1) return c;
  const CollectiveCount all_rows{1, plan_mul(rows, C)};
  if (layer.sequence_parallel) {
    c.forward.all_gather += all_rows;
    c.forward.reduce_scatter += all_rows;
    c.backward.all_gather += all_rows;
    c.backward.reduce_scatter += all_rows;
  } else {
    c.forward.all_reduce += all_rows;
    c.backward.all_reduce += all_rows;
  }
  c.backward.all_reduce += {1, routed};  // the routing probabilities' gradient
  return c;
}

Tensor MoeLayer::forward(StepContext& ctx, const Tensor& x) {
  const bool sp = sequence_parallel_applies(sequence_parallel_, tp_, ctx);
  const Tensor x_rows = (sp ? gather_from_sequence_parallel_forward(x, tp_) : x).reshape({-1, hidden_});
  const std::int64_t N = x_rows.size(0), E = moe_.router.experts;
  Tensor logits = x_rows.new_empty({N, E});
  ops::linear_forward(x_rows, router_.weight(), nullptr, logits);
  const std::vector<float> logits_host = ops::cast_to(logits, DType::f32).to_vector<float>();
  MoeSaved s{x_rows, route_tokens(logits_host.data(), N, moe_.router, ctx.seq_length), {}, {}, {}};

  Tensor sum = x_rows.new_zeros({N, hidden_}, DType::f32);  // Σ_j probs_j · expert_j(x), f32
  s.ids.resize(static_cast<std::size_t>(E));
  s.weights.resize(static_cast<std::size_t>(E));
  s.outputs.resize(static_cast<std::size_t>(E));
  for (std::int64_t e = 0; e < E; ++e) {
    const auto& tokens = s.routing.expert_tokens[static_cast<std::size_t>(e)];
    if (tokens.empty()) continue;
    const auto& slots = s.routing.expert_slots[static_cast<std::size_t>(e)];
    std::vector<float> w(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i)
      w[i] = s.routing.probs[static_cast<std::size_t>(tokens[i] * moe_.router.topk + slots[i])];
    const Tensor ids = on_device(tokens, x_rows), weights = on_device(w, x_rows);
    Tensor xe = x_rows.new_empty({ids.numel(), hidden_});
    ops::embedding_forward(ids, x_rows, xe);  // gather the expert's rows
    Tensor ye = experts_[static_cast<std::size_t>(e)]->forward(ctx, xe);
    Tensor weighted = ye.new_empty(ye.shape());
    ops::scale_rows(ye, weights, weighted);
    ops::embedding_backward(ids, weighted, sum);  // scatter-add: an expert sees a token once
    s.ids[static_cast<std::size_t>(e)] = ids;
    s.weights[static_cast<std::size_t>(e)] = weights;
    s.outputs[static_cast<std::size_t>(e)] = ye;
  }
  if (shared_) ops::add(sum, ops::cast_to(shared_->forward(ctx, x_rows), DType::f32), sum);
  Tensor y = ops::cast_to(sum, x_rows.dtype());
  if (sp) {
    y = reduce_scatter_to_sequence_parallel_forward(y, tp_);
  } else {
    reduce_from_tp_forward(y, tp_);
    y = y.reshape(x.shape());
  }
  if (ctx.training) ctx.store().save(this, std::move(s));
  return y;
}

Tensor MoeLayer::backward(StepContext& ctx, const Tensor& dy) {
  MoeSaved s = ctx.store().take<MoeSaved>(this);
  if (ctx.metrics) {  // Megatron-LM's tracked values: the losses without their coefficients
    if (moe_.router.load_balancing)
      ctx.metrics->add(moe_.router.per_sequence ? kSeqLoadBalancingLoss : kLoadBalancingLoss,
                       s.routing.load_balancing_loss);
    if (moe_.router.z_loss_coeff > 0) ctx.metrics->add(kZLoss, s.routing.z_loss);
  }
  const bool sp = sequence_parallel_applies(sequence_parallel_, tp_, ctx);
  const Tensor dy_rows = (sp ? reduce_scatter_to_sequence_parallel_backward(dy, tp_) : reduce_from_tp_backward(dy))
                             .reshape({-1, hidden_});
  const std::int64_t N = s.routing.tokens, E = moe_.router.experts, k = moe_.router.topk;
  std::vector<float> dprobs(static_cast<std::size_t>(N * k), 0.0f);
  Tensor dx_sum = dy_rows.new_zeros({N, hidden_}, DType::f32);  // the experts' (partial) input gradient
  for (std::int64_t e = 0; e < E; ++e) {
    Mlp& expert = *experts_[static_cast<std::size_t>(e)];
    const Tensor& ids = s.ids[static_cast<std::size_t>(e)];
    if (!ids.defined()) {  // no tokens: its gradient is final as it is
      expert.report_grads_final(ctx);
      continue;
    }
    Tensor dye = dy_rows.new_empty({ids.numel(), hidden_});
    ops::embedding_forward(ids, dy_rows, dye);
    Tensor dp = dye.new_empty({ids.numel()}, DType::f32);
    ops::row_dot(dye, s.outputs[static_cast<std::size_t>(e)], dp);  // d(prob) = dy · expert output
    const std::vector<float> dp_host = dp.to_vector<float>();
    const auto& tokens = s.routing.expert_tokens[static_cast<std::size_t>(e)];
    const auto& slots = s.routing.expert_slots[static_cast<std::size_t>(e)];
    for (std::size_t i = 0; i < tokens.size(); ++i)
      dprobs[static_cast<std::size_t>(tokens[i] * k + slots[i])] = dp_host[i];
    ops::scale_rows(dye, s.weights[static_cast<std::size_t>(e)], dye);
    ops::embedding_backward(ids, expert.backward(ctx, dye), dx_sum);
  }
  if (shared_) ops::add(dx_sum, ops::cast_to(shared_->backward(ctx, dy_rows), DType::f32), dx_sum);
  if (tp_size(tp_) > 1) {  // each rank's expert outputs were partial sums
    Tensor t = on_device(dprobs, dy_rows);
    reduce_from_tp_forward(t, tp_);
    dprobs = t.to_vector<float>();
  }
  const std::vector<float> dlogits_host = router_logits_grad(s.routing, dprobs, moe_.router, ctx.loss_grad_scale);
  const Tensor dlogits = ops::cast_to(Tensor::from<float>({N, E}, dlogits_host).to(dy_rows.device()), s.x.dtype());
  Tensor dx_router = s.x.new_empty(s.x.shape());
  ops::linear_backward(dlogits, s.x, router_.weight(), &dx_router, &router_.grad, nullptr);
  ctx.grad_ready(router_);

  Tensor dx = ops::cast_to(dx_sum, dy.dtype());
  if (sp) {
    dx = gather_from_sequence_parallel_backward(dx, tp_);
    const SequenceShard shard = sequence_shard(N, tp_);
    ops::add(dx, dx_router.rows(shard.first, shard.first + shard.rows), dx);
    return dx;
  }
  copy_to_tp_backward(dx, tp_);
  ops::add(dx, dx_router, dx);
  return dx.reshape(dy.shape());
}

}  // namespace tessera
