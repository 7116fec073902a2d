#include "tessera/nn/self_attention.hpp"

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {
std::int64_t groups_or_heads(const AttentionOptions& o) { return o.query_groups > 0 ? o.query_groups : o.heads; }
}  // namespace

SelfAttention::SelfAttention(const std::string& name, const AttentionOptions& o, std::uint64_t seed)
    : heads_(o.heads),
      groups_(groups_or_heads(o)),
      head_dim_(o.hidden / o.heads),
      query_(name + ".query", {o.hidden, o.heads * (o.hidden / o.heads), true, o.init_std}, seed),
      key_value_(name + ".key_value", {o.hidden, 2 * groups_or_heads(o) * (o.hidden / o.heads), true, o.init_std}, seed),
      output_(name + ".output", {o.heads * (o.hidden / o.heads), o.hidden, true, o.output_init_std}, seed) {
  if (o.heads <= 0 || o.hidden % o.heads != 0)
    throw ConfigError(fmt::format("hidden_size {} must be a positive multiple of num_attention_heads {}", o.hidden, o.heads));
  if (groups_ <= 0 || heads_ % groups_ != 0)
    throw ConfigError(fmt::format("num_attention_heads {} must be a multiple of num_query_groups {}", heads_, groups_));
}

void SelfAttention::collect_parameters(std::vector<Parameter*>& out) {
  query_.collect_parameters(out);
  key_value_.collect_parameters(out);
  output_.collect_parameters(out);
}

Tensor SelfAttention::forward(StepContext& ctx, const Tensor& x) {
  TESSERA_CHECK_SHAPE(x.dim() == 3, "SelfAttention expects x [B,T,C], got {}", x.str());
  ops::AttentionShape s{x.size(0), x.size(1), heads_, groups_, head_dim_, true};
  Tensor q = query_.forward(ctx, x);
  Tensor kv = key_value_.forward(ctx, x);
  Tensor context = Tensor::empty({s.B, s.T, s.Hq * s.D});
  Tensor probs = Tensor::empty({s.B, s.Hq, s.T, s.T});
  ops::attention_forward(s, q, kv, context, probs);
  if (ctx.training) ctx.store.save(this, {q, kv, probs});
  return output_.forward(ctx, context);
}

Tensor SelfAttention::backward(StepContext& ctx, const Tensor& dy) {
  Tensor dcontext = output_.backward(ctx, dy);
  auto saved = ctx.store.take(this);
  const Tensor& q = saved[0];
  const Tensor& kv = saved[1];
  ops::AttentionShape s{q.size(0), q.size(1), heads_, groups_, head_dim_, true};
  Tensor dq = Tensor::empty(q.shape()), dkv = Tensor::empty(kv.shape());
  ops::attention_backward(s, dcontext, q, kv, saved[2], dq, dkv);
  Tensor dx = query_.backward(ctx, dq);
  Tensor dx_kv = key_value_.backward(ctx, dkv);
  ops::axpy(1.0f, dx_kv, dx);
  return dx;
}

}  // namespace tessera
