#include "tessera/nn/self_attention.hpp"

#include <algorithm>

#include "tessera/error.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {
std::int64_t groups_or_heads(const AttentionOptions& o) { return o.query_groups > 0 ? o.query_groups : o.heads; }

// Called from the first member initialiser, so that no member is computed or built from options
// that are not valid: a bad shape is a ConfigError rather than a division error.
const AttentionOptions& checked(const AttentionOptions& o) {
  const std::int64_t groups = groups_or_heads(o), tp = tp_size(o.tp);
  if (o.hidden <= 0 || o.heads <= 0 || o.hidden % o.heads != 0)
    throw ConfigError(fmt::format("hidden_size {} must be a positive multiple of num_attention_heads {}", o.hidden, o.heads));
  if (groups <= 0 || o.heads % groups != 0)
    throw ConfigError(fmt::format("num_attention_heads {} must be a multiple of num_query_groups {}", o.heads, groups));
  if (o.heads % tp != 0)
    throw ConfigError(fmt::format("num_attention_heads {} must be a multiple of the tensor-parallel size {}", o.heads, tp));
  if (groups >= tp ? groups % tp != 0 : groups != 1)
    throw ConfigError(fmt::format("num_query_groups {} must be a multiple of the tensor-parallel size {}, or 1 "
                                  "(multi-query attention, K/V replicated)", groups, tp));
  return o;
}

std::unique_ptr<Module> make_key_value(const std::string& name, const AttentionOptions& o, std::int64_t head_dim,
                                       std::uint64_t seed) {
  const std::int64_t groups = groups_or_heads(o), out = 2 * groups * head_dim;
  if (groups >= tp_size(o.tp)) {
    ColumnParallelOptions c{o.hidden, out, true, o.init_std};
    c.blocks = 2;
    c.reduce_input_grad = false;
    return std::make_unique<ColumnParallelLinear>(name, c, seed, o.tp);
  }
  auto kv = std::make_unique<Linear>(name, LinearOptions{o.hidden, out, true, o.init_std}, seed);
  std::vector<Parameter*> params;
  kv->collect_parameters(params);
  for (Parameter* p : params) p->reduce_grad_over_tp = true;
  return kv;
}

ColumnParallelOptions query_options(const AttentionOptions& o) {
  ColumnParallelOptions c{o.hidden, o.hidden, true, o.init_std};
  c.reduce_input_grad = false;
  return c;
}
}  // namespace

SelfAttention::SelfAttention(const std::string& name, const AttentionOptions& o, std::uint64_t seed)
    : tp_(checked(o).tp),
      sequence_parallel_(o.sequence_parallel),
      recompute_core_(o.recompute_core),
      heads_(o.heads / tp_size(o.tp)),
      groups_(std::max<std::int64_t>(1, groups_or_heads(o) / tp_size(o.tp))),
      head_dim_(o.hidden / o.heads),
      query_(name + ".query", query_options(o), seed, o.tp),
      key_value_(make_key_value(name + ".key_value", o, head_dim_, seed)),
      output_(name + ".output", {o.hidden, o.hidden, true, o.output_init_std, o.sequence_parallel}, seed, o.tp) {}

void SelfAttention::collect_parameters(std::vector<Parameter*>& out) {
  query_.collect_parameters(out);
  key_value_->collect_parameters(out);
  output_.collect_parameters(out);
}

Tensor SelfAttention::forward(StepContext& ctx, const Tensor& x_in) {
  Tensor x;
  if (sequence_parallel_applies(sequence_parallel_, tp_, ctx)) {
    Tensor rows = gather_from_sequence_parallel_forward(x_in, tp_);  // [B·T, C]
    const std::int64_t T = ctx.seq_length, N = rows.size(0);
    TESSERA_CHECK_SHAPE(T > 0 && N % T == 0,
                        "sequence-parallel SelfAttention needs ctx.seq_length (T = {}) to divide the {} gathered token rows",
                        T, N);
    x = rows.reshape({N / T, T, rows.size(1)});
  } else {
    TESSERA_CHECK_SHAPE(x_in.dim() == 3, "SelfAttention expects x [B,T,C], got {}", x_in.str());
    x = copy_to_tp_forward(x_in);
  }
  const std::int64_t B = x.size(0), T = x.size(1);
  ops::AttentionShape s{B, T, T, heads_, groups_, head_dim_, true};
  Tensor q = query_.forward(ctx, x);
  Tensor kv = key_value_->forward(ctx, x);
  Tensor context = q.new_empty({B, T, s.Hq * s.D});
  Tensor lse = q.new_empty({B, s.Hq, T});
  ops::attention_forward(s, q, kv, Tensor(), context, lse);
  // context is also the output projection's saved input: saving it here holds no extra bytes.
  if (ctx.training)
    ctx.store().save(this, recompute_core_ ? Saved{q, kv, Tensor(), Tensor()} : Saved{q, kv, context, lse});
  return output_.forward(ctx, context);
}

Tensor SelfAttention::backward(StepContext& ctx, const Tensor& dy) {
  Tensor dcontext = output_.backward(ctx, dy);
  Saved saved = ctx.store().take<Saved>(this);
  const Tensor& q = saved.q;
  const Tensor& kv = saved.kv;
  const std::int64_t B = q.size(0), T = q.size(1);
  ops::AttentionShape s{B, T, T, heads_, groups_, head_dim_, true};
  Tensor context, lse;
  if (recompute_core_) {  // selective recompute: the forward's output and lse again, bit for bit
    context = q.new_empty({B, T, s.Hq * s.D});
    lse = q.new_empty({B, s.Hq, T});
    ops::attention_forward(s, q, kv, Tensor(), context, lse);
  } else {
    context = saved.context;
    lse = saved.lse;
  }
  Tensor dq = q.new_empty(q.shape()), dkv = kv.new_empty(kv.shape());
  ops::attention_backward(s, dcontext, q, kv, Tensor(), context, lse, dq, dkv);
  Tensor dx = query_.backward(ctx, dq);
  Tensor dx_kv = key_value_->backward(ctx, dkv);
  ops::axpy(1.0f, dx_kv, dx);
  // Both projections' partial input gradients, reduced once.
  if (sequence_parallel_applies(sequence_parallel_, tp_, ctx)) return gather_from_sequence_parallel_backward(dx, tp_);
  copy_to_tp_backward(dx, tp_);
  return dx;
}

}  // namespace tessera
