#include "tessera/nn/moe.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/nn/moe_dispatch.hpp"
#include "tessera/nn/recomputed_module.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// The shared expert's gate (MoeOptions::shared_gate): its (partial) output before the gate and
// sigmoid(x · w) per token (f32 [N]), both on the device.
struct SharedGateSaved {
  Tensor shared_out, gate;
};

// `shared` (the shared expert's partial output on the rows x) times sigmoid(x · w) per token.
Tensor shared_gate_forward(const Tensor& x, const Parameter& w, const Tensor& shared, SharedGateSaved& s) {
  const std::int64_t N = x.size(0);
  Tensor logit = x.new_empty({N, 1});
  ops::linear_forward(x, w.weight(), nullptr, logit);
  s.gate = x.new_empty({N}, DType::f32);
  ops::sigmoid_forward(ops::cast_to(logit, DType::f32), s.gate);
  s.shared_out = shared;
  Tensor gated = shared.new_empty(shared.shape());
  ops::scale_rows(shared, s.gate, gated);
  return gated;
}

// Its backward: returns the shared expert's output gradient; adds w's gradient and sets dx to the
// gate's input gradient (whole on every tp rank: d(gate) = dy · shared output per token is summed
// over tp first, the outputs being partial).
Tensor shared_gate_backward(const Tensor& dy, const Tensor& x, Parameter& w, const SharedGateSaved& s,
                            const TpGroup& tp, Tensor& dx) {
  const std::int64_t N = x.size(0);
  Tensor dgate = dy.new_empty({N}, DType::f32);
  ops::row_dot(dy, s.shared_out, dgate);
  reduce_from_tp_forward(dgate, tp);
  ops::sigmoid_backward(dgate, s.gate, dgate);  // the logit's gradient, in place
  const Tensor dlogit = ops::cast_to(dgate, x.dtype()).reshape({N, 1});
  dx = x.new_empty(x.shape());
  ops::linear_backward(dlogit, x, w.weight(), &dx, &w.grad, nullptr);
  Tensor dshared = dy.new_empty(dy.shape());
  ops::scale_rows(dy, s.gate, dshared);
  return dshared;
}

// What backward needs: every token row, the routing, its dispatch and each expert's (partial) output.
struct MoeSaved {
  Tensor x;  // [N, C]
  Tensor x_group;  // expert parallelism: the group's rows [ep·N, C], or the all-to-all's received rows (else x)
  MoeRouting routing;
  Dispatch dispatch;
  Exchange exchange;  // the all-to-all dispatcher's
  std::vector<Tensor> outputs;  // per expert; undefined for an expert without tokens
  SharedGateSaved shared_gate;
  std::vector<Tensor> tensors() const {
    std::vector<Tensor> all{x, dispatch.ids, dispatch.weights};
    if (shared_gate.shared_out.defined()) all.insert(all.end(), {shared_gate.shared_out, shared_gate.gate});
    if (!x_group.same_memory(x)) all.push_back(x_group);
    for (const Tensor& t : outputs)
      if (t.defined()) all.push_back(t);
    return all;
  }
};


}  // namespace

std::string moe_layer_metric_name(const std::string& name, std::int64_t layer) {
  return fmt::format("moe/{}_layer_{}", name, layer);
}

std::vector<std::string> moe_metric_names(const MoeOptions& moe, const std::vector<std::int64_t>& moe_layers) {
  std::vector<std::string> names;
  if (moe.router.experts == 0) return names;
  if (moe.router.load_balancing) names.push_back(moe.router.per_sequence ? kSeqLoadBalancingLoss : kLoadBalancingLoss);
  if (moe.router.z_loss_coeff > 0) names.push_back(kZLoss);
  if (!moe.per_layer_logging) return names;
  const std::size_t totals = names.size();
  for (std::size_t n = 0; n < totals; ++n)
    for (std::int64_t layer : moe_layers) names.push_back(moe_layer_metric_name(names[n], layer));
  return names;
}

bool is_expert_tensor(const std::string& name) { return name.find(kExpertsNamePart) != std::string::npos; }

std::string expert_role(const std::string& name) {
  const std::size_t at = name.find(kExpertsNamePart);
  if (at == std::string::npos) return name;
  const std::size_t index = at + std::string(kExpertsNamePart).size();
  std::size_t end = index;
  while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
  return name.substr(0, index) + "*" + name.substr(end);
}

std::string describe_moe(const MoeOptions& moe) {
  const MoeRouterOptions& r = moe.router;
  std::string routing = fmt::format("top {}", r.topk);
  if (r.sinkhorn)
    routing += " Sinkhorn-balanced";
  else if (r.sigmoid)
    routing += " of the sigmoid scores";
  else if (r.pre_softmax)
    routing += " of the softmax";
  if (r.num_groups > 0) routing += fmt::format(" in {} of {} expert groups", r.group_topk, r.num_groups);
  std::vector<std::string> parts{routing, fmt::format("expert ffn {}", moe.ffn_hidden)};
  if (moe.shared_ffn_hidden > 0)
    parts.push_back(fmt::format("{}shared expert ffn {}", moe.shared_gate ? "gated " : "", moe.shared_ffn_hidden));
  if (r.expert_bias) parts.push_back(fmt::format("expert bias (rate {})", r.bias_update_rate));
  if (moe.alltoall && moe.expert_parallel > 1) parts.push_back("all-to-all token dispatch");
  if (r.capacity_factor > 0)
    parts.push_back(fmt::format("capacity factor {}, dropping by {}", r.capacity_factor,
                                r.drop_by_position ? "position" : "probs"));
  return fmt::format("mixture of {} experts ({})", r.experts, fmt::join(parts, ", "));
}

MlpOptions MoeLayer::expert_options(const MlpOptions& layer, const MoeOptions& moe, std::int64_t ffn) {
  MlpOptions e = layer;
  e.ffn_hidden = ffn;
  e.swiglu = moe.swiglu;
  e.squared_relu = moe.squared_relu;
  e.sequence_parallel = false;  // the layer gathers the rows once for all experts
  e.reduce = false;             // and reduces once
  e.recompute_activation = moe.recompute_expert_activation;
  return e;
}

MlpOptions MoeLayer::shared_expert_options(const MlpOptions& layer, const MoeOptions& moe) {
  MlpOptions e = expert_options(layer, moe, moe.shared_ffn_hidden);
  e.recompute_activation = false;  // "moe_act" is the routed experts' (Megatron-Core's)
  if (!moe.clamp_shared_expert) e.glu.clamp = GatedLinearUnit{}.clamp;
  return e;
}

void MoeLayer::update_expert_bias(const std::vector<double>& tokens_per_expert) {
  // bias += rate · sign(mean − count), in f32 as Megatron-Core's get_updated_expert_bias.
  double mean = 0.0;
  for (double c : tokens_per_expert) mean += c;
  mean /= static_cast<double>(tokens_per_expert.size());
  std::vector<float> bias = expert_bias_.value.to_vector<float>();
  const auto rate = static_cast<float>(moe_.router.bias_update_rate);
  for (std::size_t e = 0; e < bias.size(); ++e) {
    const double offset = mean - tokens_per_expert[e];
    bias[e] += static_cast<float>((offset > 0) - (offset < 0)) * rate;
  }
  ops::copy(Tensor::from<float>(expert_bias_.value.shape(), bias).to(expert_bias_.value.device()), expert_bias_.value);
}

MoeLayer::MoeLayer(const std::string& name, const MlpOptions& layer, const MoeOptions& moe, std::uint64_t seed,
                   TpGroup tp)
    : hidden_(layer.hidden),
      layer_index_(layer.layer_index),
      sequence_parallel_(layer.sequence_parallel),
      moe_(moe),
      tp_(std::move(tp)),
      ep_(moe.expert_group),
      router_(name + ".router.weight", {moe.router.experts, layer.hidden}),
      router_has_bias_(layer.bias),
      router_bias_(name + ".router.bias", {moe.router.experts}, /*decay=*/false),
      expert_bias_(name + ".router.expert_bias", {moe.router.experts}, /*decay=*/false),
      shared_gate_(name + ".shared_expert.gate_weight", {1, layer.hidden}) {
  expert_bias_.trainable = false;
  if (moe.router.experts < 1 || moe.router.topk < 1 || moe.router.topk > moe.router.experts)
    throw ConfigError(fmt::format("{}: {} experts with top-{} routing (topk must be in [1, experts])", name,
                                  moe.router.experts, moe.router.topk));
  init_normal(router_.value, layer.init_std, seed, router_.name);
  // Megatron-Core's router bias (add_bias_linear), initialised as its weight (init_method).
  if (layer.bias) init_normal(router_bias_.value, layer.init_std, seed, router_bias_.name);
  const MlpOptions e = expert_options(layer, moe, moe.ffn_hidden);
  // Whole experts: other ones on each tp rank (ParallelLayout::expert_tp_slices), or with ep 1 all of
  // them, each tp rank taking its share of the rows.
  if (moe.expert_tensor_parallel == 1 && moe.expert_parallel > 1) {
    expert_slices_ = tp_size(tp_);
    expert_slice_ = tp_rank(tp_);
  } else if (moe.expert_tensor_parallel == 1) {
    row_share_ = {tp_rank(tp_), tp_size(tp_)};
  }
  const int ep = expert_slices_ * tp_size(ep_);
  if (moe.router.experts % ep != 0)
    throw ConfigError(fmt::format("{}: {} experts do not split over {} expert-parallel ranks", name,
                                  moe.router.experts, ep));
  const std::int64_t local = moe.router.experts / ep;
  first_expert_ = (expert_slice_ + expert_slices_ * tp_rank(ep_)) * local;
  const TpGroup expert_tp = moe.expert_tensor_parallel == 1 ? TpGroup{} : tp_;
  for (std::int64_t i = first_expert_; i < first_expert_ + local; ++i) {
    experts_.push_back(std::make_unique<Mlp>(fmt::format("{}{}{}", name, kExpertsNamePart, i), e, seed, expert_tp));
    std::vector<Parameter*> params;
    experts_.back()->collect_parameters(params);
    for (Parameter* param : params) {
      param->expert_parallel = ep > 1;
      if (moe.expert_tensor_parallel != 1) continue;
      param->tp_split_dim = -1;  // built without a tp group: its linears' split is no tp split
      param->tp_split_blocks = 1;
      // Other experts on the other tp ranks; or (ep 1) the same ones on every tp rank, each of which
      // computes the gradient of its share of the rows, summed over tp as a norm's under sp.
      param->whole_on_one_tp_rank = ep > 1;
      param->reduce_grad_over_tp = ep == 1;
    }
  }
  if (moe.shared_ffn_hidden > 0) {
    shared_ = std::make_unique<Mlp>(name + ".shared_expert", shared_expert_options(layer, moe), seed, tp_);
    if (moe.recompute_shared_expert) shared_ = std::make_unique<RecomputedModule>(std::move(shared_));
  }
  if (moe.shared_gate) init_normal(shared_gate_.value, layer.init_std, seed, shared_gate_.name);
}

void MoeLayer::collect_parameters(std::vector<Parameter*>& out) {
  out.push_back(&router_);
  if (router_has_bias_) out.push_back(&router_bias_);
  if (moe_.router.expert_bias) out.push_back(&expert_bias_);
  for (auto& e : experts_) e->collect_parameters(out);
  if (shared_) shared_->collect_parameters(out);
  if (moe_.shared_gate) out.push_back(&shared_gate_);
}

ModuleCost MoeLayer::cost(const MlpOptions& layer, const MoeOptions& moe, std::int64_t rows, std::int64_t tp) {
  // Dropless: rows·k routed rows whatever the routing; with token dropping at most E·capacity.
  // Under expert parallelism this rank's E/ep experts take the group's ep·rows rows: rows·k of
  // them when the router spreads tokens evenly (the figure planned), at most E·capacity with
  // token dropping.
  // Expert tensor parallel size 1: whole experts, each of the tp ranks taking its share of the
  // routed rows (other experts' or, with ep 1, other rows); the token exchange runs over ep_dp
  // data-parallel ranks (ep / tp of them; none with ep 1).
  const std::int64_t E = moe.router.experts, C = layer.hidden, ep = moe.expert_parallel;
  const bool whole = moe.expert_tensor_parallel == 1;
  const std::int64_t slices = whole ? tp : 1, etp = tp / slices, ep_dp = whole ? std::max<std::int64_t>(1, ep / tp) : ep;
  const std::int64_t routed = expert_rows(rows, moe.router);
  const MlpOptions eo = expert_options(layer, moe, moe.ffn_hidden);
  const ModuleCost expert = Mlp::cost(eo, routed / slices, etp);  // all routed rows through "one" expert
  ModuleCost c;
  c.parameters = plan_add(plan_mul(E, layer.bias ? C + 1 : C), plan_mul(E / ep, Mlp::cost(eo, 0, etp).parameters));
  c.parameter_tensors = (layer.bias ? 2 : 1) + E / ep * expert.parameter_tensors;
  // Every token row (and the group's, with ep), the experts' saved tensors for rows·k rows, their
  // outputs, ids and weights.
  c.saved_elements = plan_add(plan_add(plan_mul(plan_mul(rows, ep_dp > 1 ? 1 + ep_dp : 1), C), expert.saved_elements),
                              plan_add(plan_mul(routed / slices, C), plan_mul(routed / slices, 2)));
  if (moe.shared_ffn_hidden > 0) {  // every row; its input is the rows kept above (held once)
    ModuleCost shared = Mlp::cost(shared_expert_options(layer, moe), rows, tp);
    if (moe.recompute_shared_expert) shared = RecomputedModule::cost(shared, plan_mul(rows, C));
    c.parameters = plan_add(c.parameters, shared.parameters);
    c.parameter_tensors += shared.parameter_tensors;
    c.saved_elements = plan_add(c.saved_elements, shared.saved_elements - plan_mul(rows, C));
    if (moe.shared_gate) {  // its [1, C] weight; the shared output and the gate kept; d(gate) over tp
      c.parameters = plan_add(c.parameters, C);
      c.parameter_tensors += 1;
      c.saved_elements = plan_add(c.saved_elements, plan_add(plan_mul(rows, C), rows));
      if (tp > 1) c.backward.all_reduce += {1, rows};
    }
  }
  if (whole && ep == 1 && tp > 1)  // every tp rank's gradient of its rows, summed over tp
    c.tp_replicated_grads += {E * expert.parameter_tensors, plan_mul(E, Mlp::cost(eo, 0, etp).parameters)};
  if (ep > 1)
    c.expert_parameters = {E / ep * expert.parameter_tensors, plan_mul(E / ep, Mlp::cost(eo, 0, etp).parameters)};
  if (ep_dp > 1) {
    const std::int64_t k = moe.router.topk, group_rows = plan_mul(rows, ep_dp);
    // Forward: the routing table (expert and weight of each pair) all-gathered; backward: the
    // routing weights' gradient reduce-scattered. The allgather dispatcher also all-gathers the
    // rows and the output gradient and reduce-scatters the outputs and the input gradient; the
    // alltoall dispatcher's point-to-point rows depend on the routing and are not counted.
    c.ep_forward.all_gather += {1, plan_mul(plan_mul(group_rows, k), 2)};
    c.ep_backward.reduce_scatter += {1, plan_mul(group_rows, k)};
    if (!moe.alltoall) {
      c.ep_forward.all_gather += {1, plan_mul(group_rows, C)};
      c.ep_forward.reduce_scatter += {1, plan_mul(group_rows, C)};
      c.ep_backward.all_gather += {1, plan_mul(group_rows, C)};
      c.ep_backward.reduce_scatter += {1, plan_mul(group_rows, C)};
    }
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
  ops::linear_forward(x_rows, router_.weight(), router_has_bias_ ? &router_bias_.weight() : nullptr, logits);
  const std::vector<float> logits_host = ops::cast_to(logits, DType::f32).to_vector<float>();
  const std::vector<float> bias = moe_.router.expert_bias ? expert_bias_.value.to_vector<float>() : std::vector<float>();
  MoeSaved s{x_rows, x_rows, route_tokens(logits_host.data(), N, moe_.router, ctx.seq_length, bias.data(), ctx.training),
             {}, {}};
  // Expert parallelism: the group's rows, each rank's after the previous one's (allgather), or the
  // rows this rank's experts take from each rank (alltoall).
  const bool ep = tp_size(ep_) > 1, alltoall = ep && moe_.alltoall;
  const auto local = static_cast<std::int64_t>(experts_.size());
  const RoutedTable table = gather_table(routed_table(s.routing), ep_, x_rows.device());
  if (alltoall) {
    s.exchange = plan_exchange(table, tp_size(ep_), tp_rank(ep_), local, x_rows.device(), expert_slices_, expert_slice_);
    s.x_group = exchange_rows(x_rows, s.exchange, *ep_);
  } else if (ep) {
    s.x_group = all_gather_rows(x_rows, ep_, "expert-parallel dispatch");
  }
  s.dispatch = dispatch(table, first_expert_, local, x_rows.device(), alltoall ? &s.exchange.buffer_row : nullptr,
                        row_share_);

  // Σ_j probs_j · expert_j(x), f32, over the group's rows (this rank's experts' share of it).
  Tensor sum = x_rows.new_zeros({s.x_group.size(0), hidden_}, DType::f32);
  s.outputs.resize(static_cast<std::size_t>(local));
  for (std::int64_t e = 0; e < local; ++e) {
    if (s.dispatch.count(e) == 0) continue;
    const Tensor ids = s.dispatch.ids_of(e);
    Tensor xe = x_rows.new_empty({ids.numel(), hidden_});
    ops::embedding_forward(ids, s.x_group, xe);  // gather the expert's rows
    Tensor ye = experts_[static_cast<std::size_t>(e)]->forward(ctx, xe);
    Tensor weighted = ye.new_empty(ye.shape());
    ops::scale_rows(ye, s.dispatch.weights_of(e), weighted);
    ops::embedding_backward(ids, weighted, sum);  // scatter-add: an expert sees a token once
    s.outputs[static_cast<std::size_t>(e)] = ye;
  }
  if (alltoall)  // this rank's rows, every expert's
    sum = combine_rows(sum, s.exchange, *ep_, N);
  else if (ep)
    sum = reduce_scatter_rows(sum, ep_, "expert-parallel combine");
  if (shared_) {
    Tensor shared = shared_->forward(ctx, x_rows);
    if (moe_.shared_gate) shared = shared_gate_forward(x_rows, shared_gate_, shared, s.shared_gate);
    ops::add(sum, ops::cast_to(shared, DType::f32), sum);
  }
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
    const auto report = [&](const std::string& name, double value) {
      ctx.metrics->add(name, value);
      if (moe_.per_layer_logging) ctx.metrics->add(moe_layer_metric_name(name, layer_index_), value);
    };
    if (moe_.router.load_balancing)
      report(moe_.router.per_sequence ? kSeqLoadBalancingLoss : kLoadBalancingLoss, s.routing.load_balancing_loss);
    if (moe_.router.z_loss_coeff > 0) report(kZLoss, s.routing.z_loss);
  }
  if (moe_.router.expert_bias && ctx.buffer_statistics) {  // the tokens each expert took from this rank's rows
    std::vector<double> counts(static_cast<std::size_t>(moe_.router.experts));
    for (std::int64_t e = 0; e < moe_.router.experts; ++e)
      counts[static_cast<std::size_t>(e)] = static_cast<double>(s.routing.expert_tokens[static_cast<std::size_t>(e)].size());
    ctx.buffer_statistics->add(expert_bias_.name, counts, [this](const std::vector<double>& total) { update_expert_bias(total); });
  }
  const bool sp = sequence_parallel_applies(sequence_parallel_, tp_, ctx);
  const Tensor dy_rows = (sp ? reduce_scatter_to_sequence_parallel_backward(dy, tp_) : reduce_from_tp_backward(dy))
                             .reshape({-1, hidden_});
  const std::int64_t N = s.routing.tokens, E = moe_.router.experts, k = moe_.router.topk;
  const bool ep = tp_size(ep_) > 1, alltoall = ep && moe_.alltoall;
  const Tensor dy_group = alltoall ? exchange_rows(dy_rows, s.exchange, *ep_)
                          : ep     ? all_gather_rows(dy_rows, ep_, "expert-parallel combine backward")
                                   : dy_rows;
  const Dispatch& d = s.dispatch;
  // d(weight) = dy · expert output of every routed pair, in dispatch order, read once.
  Tensor dweights = dy_rows.new_empty({d.ids.numel()}, DType::f32);
  Tensor dx_sum = dy_rows.new_zeros({dy_group.size(0), hidden_}, DType::f32);  // the experts' (partial) input gradient
  for (std::size_t e = 0; e < experts_.size(); ++e) {
    Mlp& expert = *experts_[e];
    const auto i = static_cast<std::int64_t>(e);
    if (d.count(i) == 0) {  // no tokens: its gradient is final as it is
      expert.report_grads_final(ctx);
      continue;
    }
    const Tensor ids = d.ids_of(i);
    Tensor dye = dy_rows.new_empty({ids.numel(), hidden_});
    ops::embedding_forward(ids, dy_group, dye);
    Tensor dw = dweights.rows(d.first[e], d.first[e + 1]);
    ops::row_dot(dye, s.outputs[e], dw);
    ops::scale_rows(dye, d.weights_of(i), dye);
    ops::embedding_backward(ids, expert.backward(ctx, dye), dx_sum);
  }
  // Each pair's weight gradient, placed on the device at its (row, slot) of the group's table (a pair
  // appears once: the scatter-add is a placement); under expert parallelism only the rank holding
  // the pair's expert has it (the others add zeros), and each rank keeps its rows'. Each rank's
  // expert outputs were partial sums over tp; every tp rank dispatched alike. Read once, below.
  const std::int64_t rows = d.table_rows;
  const auto pairs = static_cast<std::int64_t>(d.pairs.size());
  const Tensor pair_ids =
      Tensor::from<std::int32_t>({pairs}, std::vector<std::int32_t>(d.pairs.begin(), d.pairs.end())).to(dy_rows.device());
  Tensor dprobs_dev = dy_rows.new_zeros({rows * k, 1}, DType::f32);
  ops::embedding_backward(pair_ids, dweights.reshape({pairs, 1}), dprobs_dev);
  dprobs_dev = dprobs_dev.reshape({rows * k});
  if (ep) {
    dprobs_dev = reduce_scatter_rows(dprobs_dev.reshape({rows, k}), ep_, "expert-parallel dispatch backward").reshape({N * k});
    dx_sum = alltoall ? combine_rows(dx_sum, s.exchange, *ep_, N)
                      : reduce_scatter_rows(dx_sum, ep_, "expert-parallel dispatch backward");
  }
  reduce_from_tp_forward(dprobs_dev, tp_);
  Tensor dx_gate;  // the gate's input gradient (whole on every tp rank, as the router's)
  if (shared_) {
    Tensor dshared = dy_rows;
    if (moe_.shared_gate) {
      dshared = shared_gate_backward(dy_rows, s.x, shared_gate_, s.shared_gate, tp_, dx_gate);
      ctx.grad_ready(shared_gate_);
    }
    ops::add(dx_sum, ops::cast_to(shared_->backward(ctx, dshared), DType::f32), dx_sum);
  }
  const std::vector<float> dprobs = dprobs_dev.to_vector<float>();
  const std::vector<float> dlogits_host = router_logits_grad(s.routing, dprobs, moe_.router, ctx.loss_grad_scale);
  const Tensor dlogits = ops::cast_to(Tensor::from<float>({N, E}, dlogits_host).to(dy_rows.device()), s.x.dtype());
  Tensor dx_router = s.x.new_empty(s.x.shape());
  ops::linear_backward(dlogits, s.x, router_.weight(), &dx_router, &router_.grad,
                       router_has_bias_ ? &router_bias_.grad : nullptr);
  ctx.grad_ready(router_);
  if (router_has_bias_) ctx.grad_ready(router_bias_);
  if (dx_gate.defined()) ops::add(dx_router, dx_gate, dx_router);

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
