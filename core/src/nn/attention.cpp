#include "tessera/nn/attention.hpp"

#include <algorithm>

#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/nn/kv_cache.hpp"
#include "tessera/nn/linear.hpp"
#include "tessera/ops.hpp"

namespace tessera {

const char* attention_kind_name(AttentionKind k) {
  switch (k) {
    case AttentionKind::causal_self: return "causal self-attention";
    case AttentionKind::padded_self: return "padding-masked self-attention";
    case AttentionKind::cross: return "cross-attention";
  }
  return "attention";
}

const char* softmax_type_name(AttentionOptions::SoftmaxType t) {
  switch (t) {
    case AttentionOptions::SoftmaxType::vanilla: return "vanilla";
    case AttentionOptions::SoftmaxType::off_by_one: return "off-by-one";
    case AttentionOptions::SoftmaxType::learnable: return "learnable";
  }
  return "vanilla";
}

namespace {
std::int64_t groups_or_heads(const AttentionOptions& o) { return o.query_groups > 0 ? o.query_groups : o.heads; }
bool is_cross(const AttentionOptions& o) { return o.kind == AttentionKind::cross; }
std::int64_t head_dim(const AttentionOptions& o) { return o.kv_channels > 0 ? o.kv_channels : o.hidden / o.heads; }
std::int64_t query_width(const AttentionOptions& o) { return o.heads * head_dim(o); }  // = hidden without kv_channels

// The rotation of the query heads of B rows of T tokens from `position` on (the keys' takes the
// groups' count and the [K | V] row width).
ops::RopeShape query_rope(const AttentionOptions::Rotary& r, std::int64_t heads, std::int64_t head_dim, std::int64_t B,
                          std::int64_t T, std::int64_t position) {
  return {B, T, heads, head_dim, heads * head_dim, r.dim, r.base, r.interleaved, position, r.scaling_factor,
          r.interpolation, r.yarn};
}

// Called from the first member initialiser, so that no member is computed or built from options
// that are not valid: a bad shape is a ConfigError rather than a division error.
const AttentionOptions& checked(const AttentionOptions& o) {
  const std::int64_t groups = groups_or_heads(o), tp = tp_size(o.tp);
  if (o.hidden <= 0 || o.heads <= 0 || o.kv_channels < 0 || (o.kv_channels == 0 && o.hidden % o.heads != 0))
    throw ConfigError(fmt::format("hidden_size {} must be a positive multiple of num_attention_heads {} (or set "
                                  "kv_channels, the channels of each head)",
                                  o.hidden, o.heads));
  if (groups <= 0 || o.heads % groups != 0)
    throw ConfigError(fmt::format("num_attention_heads {} must be a multiple of num_query_groups {}", o.heads, groups));
  if (o.heads % tp != 0)
    throw ConfigError(fmt::format("num_attention_heads {} must be a multiple of the tensor-parallel size {}", o.heads, tp));
  if (groups >= tp ? groups % tp != 0 : groups != 1)
    throw ConfigError(fmt::format("num_query_groups {} must be a multiple of the tensor-parallel size {}, or 1 "
                                  "(multi-query attention, K/V replicated)", groups, tp));
  if (o.rotary.dim != 0 && (is_cross(o) || o.rotary.dim < 2 || o.rotary.dim % 2 != 0 || o.rotary.dim > head_dim(o)))
    throw ConfigError(fmt::format("rotary position embeddings on {} channels of each {}-channel head: they must be an "
                                  "even number ≥ 2, at most the head size, and self-attention only",
                                  o.rotary.dim, head_dim(o)));
  if (o.softmax_type != AttentionOptions::SoftmaxType::vanilla && is_cross(o))
    throw ConfigError("attention sinks (softmax_type) are for self-attention only");
  if (is_cross(o) && o.sequence_parallel && tp > 1)
    throw ConfigError("cross-attention does not support sequence parallelism (its memory would need its own shards)");
  return o;
}

bool kv_replicated(const AttentionOptions& o, std::int64_t tp) { return groups_or_heads(o) < tp; }

ColumnParallelOptions key_value_options(const AttentionOptions& o) {
  ColumnParallelOptions c{o.hidden, 2 * groups_or_heads(o) * head_dim(o), o.qkv_bias, o.init_std};
  c.blocks = 2;
  c.reduce_input_grad = false;
  c.keep_input = o.keep_input || is_cross(o);  // cross: the memory, kept by the block
  return c;
}

std::unique_ptr<Module> make_key_value(const std::string& name, const AttentionOptions& o, std::uint64_t seed) {
  const ColumnParallelOptions c = key_value_options(o);
  if (!kv_replicated(o, tp_size(o.tp))) return std::make_unique<ColumnParallelLinear>(name, c, seed, o.tp);
  auto kv = std::make_unique<Linear>(name, LinearOptions{c.in, c.out, c.bias, c.init_std, c.keep_input}, seed);
  std::vector<Parameter*> params;
  kv->collect_parameters(params);
  for (Parameter* p : params) p->reduce_grad_over_tp = true;
  return kv;
}

ColumnParallelOptions query_options(const AttentionOptions& o) {
  ColumnParallelOptions c{o.hidden, query_width(o), o.qkv_bias, o.init_std};
  c.reduce_input_grad = false;
  c.keep_input = o.keep_input;
  return c;
}

RowParallelOptions output_options(const AttentionOptions& o) {
  return {query_width(o), o.hidden, o.bias, o.output_init_std, o.sequence_parallel};
}

// A q or k norm over head_dim channels; with tp > 1 every rank's gradient covers its heads only.
std::unique_ptr<Module> make_qk_norm(const std::string& name, const AttentionOptions& o) {
  if (!o.qk_norm) return nullptr;
  std::unique_ptr<Module> norm = o.qk_norm->build(name, head_dim(o), o.qk_norm_eps);
  std::vector<Parameter*> params;
  norm->collect_parameters(params);
  for (Parameter* p : params) p->reduce_grad_over_tp = tp_size(o.tp) > 1;
  return norm;
}

// A learnable sink per head, split over tp with the heads; drawn as Megatron-Core's init_method
// draws it, element h of the layer's whole vector the same in every layout.
std::unique_ptr<Parameter> make_softmax_offset(const std::string& name, const AttentionOptions& o, std::uint64_t seed) {
  if (o.softmax_type != AttentionOptions::SoftmaxType::learnable) return nullptr;
  const std::int64_t local = o.heads / tp_size(o.tp);
  auto p = std::make_unique<Parameter>(name, Shape{local}, /*decay=*/false);  // 1-D: no weight decay
  init_normal(p->value, o.init_std, seed, p->name, tp_rank(o.tp) * local);
  p->tp_split_dim = 0;
  p->forward_reads_value = true;  // the op takes the f32 logits whatever the compute dtype
  return p;
}
}  // namespace

Attention::Attention(const std::string& name, const AttentionOptions& o, std::uint64_t seed)
    : tp_(checked(o).tp),
      kind_(o.kind),
      sequence_parallel_(o.sequence_parallel),
      recompute_core_(o.recompute_core),
      keep_input_(o.keep_input),
      heads_(o.heads / tp_size(o.tp)),
      groups_(std::max<std::int64_t>(1, groups_or_heads(o) / tp_size(o.tp))),
      head_dim_(head_dim(o)),
      window_left_(o.window_left),
      softmax_type_(o.softmax_type),
      softmax_offset_(make_softmax_offset(name + ".softmax_offset", o, seed)),
      rotary_(o.rotary),
      dropout_(o.dropout),
      dropout_site_(o.dropout_site),
      query_(name + ".query", query_options(o), seed, o.tp),
      q_norm_(make_qk_norm(name + ".q_layernorm", o)),
      key_value_(make_key_value(name + ".key_value", o, seed)),
      k_norm_(make_qk_norm(name + ".k_layernorm", o)),
      output_(name + ".output", output_options(o), seed, o.tp) {}

ops::AttentionShape Attention::op_shape(const StepContext& ctx, std::int64_t B, std::int64_t T, std::int64_t Tk) const {
  ops::AttentionShape s{B, T, Tk, heads_, groups_, head_dim_, kind_ == AttentionKind::causal_self};
  if (kind_ == AttentionKind::causal_self) s.window_left = window_left_;
  if (ctx.training && dropout_ > 0.0f) {
    s.dropout = dropout_;
    s.dropout_seed = ctx.dropout_seed(dropout_site_);
    s.head_offset = tp_rank(tp_) * heads_;  // the layer's head numbers: every tp layout, one mask
    s.heads_total = tp_size(tp_) * heads_;
  }
  return s;
}

void Attention::collect_parameters(std::vector<Parameter*>& out) {
  query_.collect_parameters(out);
  if (q_norm_) q_norm_->collect_parameters(out);
  key_value_->collect_parameters(out);
  if (k_norm_) k_norm_->collect_parameters(out);
  output_.collect_parameters(out);
  if (softmax_offset_) out.push_back(softmax_offset_.get());
}

Tensor Attention::sink(Device device) const {
  if (softmax_offset_) return softmax_offset_->value;
  if (softmax_type_ == AttentionOptions::SoftmaxType::vanilla) return Tensor();
  if (!zero_sink_.defined() || zero_sink_.device() != device) zero_sink_ = Tensor::zeros({heads_}).to(device);
  return zero_sink_;
}

ModuleCost Attention::cost(const AttentionOptions& o, const CostShape& s) {
  const std::int64_t t = s.tp, N = s.tokens(), Nk = is_cross(o) ? s.batch * s.memory_seq : N;
  const std::int64_t D = head_dim(o), kv_width = 2 * (kv_replicated(o, t) ? 1 : groups_or_heads(o) / t) * D;
  ModuleCost c = ColumnParallelLinear::cost(query_options(o), N, t);  // keeps x (gathered under sp)
  ModuleCost kv;
  if (kv_replicated(o, t)) {
    const ColumnParallelOptions k = key_value_options(o);
    kv = Linear::cost({k.in, k.out, k.bias, k.init_std, k.keep_input}, Nk);
    if (t > 1) kv.tp_replicated_grads += {kv.parameter_tensors, kv.parameters};
  } else {
    kv = ColumnParallelLinear::cost(key_value_options(o), Nk, t);
  }
  // Self: the K/V projection keeps the same input as the query's (or, without keep_input, neither
  // keeps one). Cross: the memory, counted by the block.
  kv.saved_elements = 0;
  c += kv;
  c += RowParallelLinear::cost(output_options(o), N, t);  // keeps the context, which Saved shares
  if (o.softmax_type == AttentionOptions::SoftmaxType::learnable) {  // the sink logits of this rank's heads
    c.parameters = plan_add(c.parameters, o.heads / t);
    c.parameter_tensors = plan_add(c.parameter_tensors, 1);
  }
  if (o.qk_norm) {  // each head's rows of q and of the keys: a norm's input and statistics
    const std::int64_t k_heads = kv_replicated(o, t) ? 1 : groups_or_heads(o) / t;
    const ModuleCost q_norm = o.qk_norm->cost(D, plan_mul(N, o.heads / t));
    c += q_norm;
    c += o.qk_norm->cost(D, plan_mul(Nk, k_heads));
    if (t > 1) c.tp_replicated_grads += {plan_mul(2, q_norm.parameter_tensors), plan_mul(2, q_norm.parameters)};
  }
  // q, kv and, unless recomputed, lse [B, H/tp, T]
  c.saved_elements = plan_add(c.saved_elements, plan_add(plan_mul(N, query_width(o) / t), plan_mul(Nk, kv_width)));
  if (!o.recompute_core) c.saved_elements = plan_add(c.saved_elements, plan_mul(s.batch * (o.heads / t), s.seq));
  if (t > 1) {
    const CollectiveCount rows{1, plan_mul(N, o.hidden)};
    if (o.sequence_parallel && !is_cross(o)) {
      c.forward.all_gather += rows;       // x's token rows, once for every projection
      c.backward.reduce_scatter += rows;  // the summed input gradient
      if (!o.keep_input) c.backward.all_gather += rows;  // the recomputed input's rows again
    } else {
      c.backward.all_reduce += rows;
    }
  }
  return c;
}

void Attention::normalize_qk(StepContext& ctx, Tensor& q, Tensor& kv, bool backward) {
  if (!q_norm_) return;
  const auto norm = [&](Module& m, const Tensor& x) { return backward ? m.backward(ctx, x) : m.forward(ctx, x); };
  const std::int64_t B = q.size(0), T = q.size(1), Tk = kv.size(1), D = head_dim_, K = groups_ * D;
  q = norm(*q_norm_, q.reshape({B * T * heads_, D})).reshape({B, T, heads_ * D});
  // The keys are the first K columns of each kv row: normalised through a contiguous copy.
  Tensor keys = kv.new_empty({B * Tk * groups_, D});
  ops::copy_2d(kv, 0, 2 * K, keys, 0, K, B * Tk, K);
  ops::copy_2d(norm(*k_norm_, keys), 0, K, kv, 0, 2 * K, B * Tk, K);
}

void Attention::rotate(Tensor& q, Tensor& kv, bool inverse, const Communicator* cp) const {
  if (rotary_.dim == 0) return;
  const std::int64_t B = q.size(0), T = q.size(1);
  // Rows [first, first + count) of each sequence from position `position` on.
  const auto rotate_rows = [&](std::int64_t batch, std::int64_t first, std::int64_t count, std::int64_t position) {
    const auto block = [&](Tensor& x) {
      return batch == B ? x : x.reshape({B * T, x.size(2)}).rows(batch * T + first, batch * T + first + count)
                                  .reshape({1, count, x.size(2)});
    };
    ops::RopeShape r = query_rope(rotary_, heads_, head_dim_, batch == B ? B : 1, count, position);
    Tensor qb = block(q), kb = block(kv);
    inverse ? ops::rope_backward(r, qb) : ops::rope_forward(r, qb);
    r.H = groups_;
    r.row_width = 2 * groups_ * head_dim_;  // the keys start each row of [K | V]
    inverse ? ops::rope_backward(r, kb) : ops::rope_forward(r, kb);
  };
  if (!cp) return rotate_rows(B, 0, T, 0);
  // The rank's two chunks of every sequence, each at its place in the whole sequence.
  const std::vector<std::int32_t> positions = cp_token_positions(T * cp->size(), cp->size(), cp->rank());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t half = 0; half < 2; ++half) rotate_rows(b, half * T / 2, T / 2, positions[half * T / 2]);
}

const CpGroup& Attention::context_parallel(const StepContext& ctx) const {
  const CpGroup& cp = active_context_parallel(ctx);
  if (cp && kind_ != AttentionKind::causal_self)
    throw Error(fmt::format("context parallelism splits causal self-attention only, not {}", attention_kind_name(kind_)));
  return cp;
}

namespace {

// Under context parallelism: the queries' positions among the whole sequence's keys.
Tensor query_positions(const Communicator& cp, std::int64_t local_length, Device device) {
  const std::vector<std::int32_t> p = cp_token_positions(local_length * cp.size(), cp.size(), cp.rank());
  return Tensor::from<std::int32_t>({local_length}, p).to(device);
}

// A cached step's sliding window: row b's one query, at position positions[b], attends keys from
// positions[b] − left on (the op clamps a value ≤ 0 to no restriction). The rows sit at different
// positions, so this is a first_key mask, not the op's causal window.
Tensor window_first_keys(std::int64_t left, const std::vector<std::int64_t>& positions, Device device) {
  const auto B = static_cast<std::int64_t>(positions.size());
  Tensor first = Tensor::empty({B, 1}, DType::i32);
  for (std::int64_t b = 0; b < B; ++b)
    first.data<std::int32_t>()[b] =
        static_cast<std::int32_t>(std::max<std::int64_t>(0, positions[static_cast<std::size_t>(b)] - left));
  return first.to(device);
}

}  // namespace

ops::AttentionMask Attention::checked_mask(const AttentionInputs& in, std::int64_t B, std::int64_t Tq,
                                           std::int64_t Tk, Device device) const {
  if (in.first_key.defined())
    TESSERA_CHECK_SHAPE(kind_ != AttentionKind::cross && in.first_key.dtype() == DType::i32 &&
                            in.first_key.shape() == Shape({B, Tq}),
                        "{} takes first keys i32 [{}, {}] (self-attention only), got {}", attention_kind_name(kind_), B,
                        Tq, in.first_key.str());
  const Tensor& mask = kind_ == AttentionKind::cross ? in.memory_mask : in.key_mask;
  if (kind_ == AttentionKind::causal_self) {
    TESSERA_CHECK_SHAPE(!in.key_mask.defined(), "causal self-attention takes no key mask, got {}", in.key_mask.str());
    return {Tensor(), in.first_key, sink(device)};  // the sliding window is the op's (op_shape)
  }
  if (kind_ == AttentionKind::padded_self)
    TESSERA_CHECK_SHAPE(mask.defined(), "padding-masked self-attention needs a key mask u8 [B,T]");
  if (mask.defined())
    TESSERA_CHECK_SHAPE(mask.dtype() == DType::u8 && mask.shape() == Shape({B, Tk}),
                        "{} expects a key mask u8 [{}, {}], got {}", attention_kind_name(kind_), B, Tk, mask.str());
  return {mask, kind_ == AttentionKind::cross ? Tensor() : in.first_key, sink(device)};
}

Tensor Attention::projections_input(const StepContext& ctx, const Tensor& x_in) const {
  if (sequence_parallel_applies(sequence_parallel_, tp_, ctx)) {
    Tensor rows = gather_from_sequence_parallel_forward(x_in, tp_);  // [B·T, C]
    const std::int64_t T = ctx.seq_length, N = rows.size(0);
    TESSERA_CHECK_SHAPE(T > 0 && N % T == 0,
                        "sequence-parallel attention needs ctx.seq_length (T = {}) to divide the {} gathered token rows",
                        T, N);
    return rows.reshape({N / T, T, rows.size(1)});
  }
  TESSERA_CHECK_SHAPE(x_in.dim() == 3, "attention expects x [B,T,C], got {}", x_in.str());
  return copy_to_tp_forward(x_in);
}

Tensor Attention::forward(StepContext& ctx, const Tensor& x_in, const AttentionInputs& in) {
  const Tensor x = projections_input(ctx, x_in);
  const std::int64_t B = x.size(0), T = x.size(1);
  const Tensor* source = &x;
  if (kind_ == AttentionKind::cross) {
    TESSERA_CHECK_SHAPE(in.memory.defined() && in.memory.dim() == 3 && in.memory.size(0) == B &&
                            in.memory.size(2) == x.size(2),
                        "cross-attention on x {} needs a memory [{}, Tk, {}], got {}", x.str(), B, x.size(2),
                        in.memory.defined() ? in.memory.str() : "none");
    source = &in.memory;
  }
  ops::AttentionMask mask = checked_mask(in, B, T, source->size(1), x.device());
  Tensor q = query_.forward(ctx, x);
  Tensor kv = key_value_->forward(ctx, *source);
  normalize_qk(ctx, q, kv, /*backward=*/false);
  if (ctx.kv_cache && kind_ == AttentionKind::causal_self) {
    if (ctx.training) throw Error("attention: a key/value cache is for inference only (training = false)");
    return output_.forward(ctx, cached_context(*ctx.kv_cache, q, kv));
  }
  // Context parallelism: this rank's queries against the whole sequences' keys.
  const CpGroup& cp = context_parallel(ctx);
  rotate(q, kv, false, cp.get());
  const Tensor keys = cp ? cp_gather_sequence(kv, *cp) : kv;
  if (cp) mask.query_position = query_positions(*cp, T, q.device());
  const ops::AttentionShape s = op_shape(ctx, B, T, keys.size(1));
  Tensor context = q.new_empty({B, T, s.Hq * s.D});
  Tensor lse = q.new_empty({B, s.Hq, T}, DType::f32);
  ops::attention_forward(s, q, keys, mask, context, lse);
  // context is also the output projection's saved input: saving it here holds no extra bytes.
  if (ctx.training)
    ctx.store().save(this, recompute_core_ ? Saved{q, kv, Tensor(), Tensor()} : Saved{q, kv, context, lse});
  return output_.forward(ctx, context);
}

Tensor Attention::cached_context(KvCache& cache, Tensor& q, Tensor& kv) {
  const std::int64_t B = q.size(0), T = q.size(1), W = kv.size(2), L = cache.capacity();
  TESSERA_CHECK_SHAPE(B == cache.batch(), "attention: a key/value cache of batch {} for x of batch {}", cache.batch(), B);
  Tensor& buf = cache.buffer(this, W, kv);  // [B, L, W]
  if (cache.prefilling()) {
    TESSERA_CHECK_SHAPE(T <= L, "attention: a prompt of {} tokens exceeds the key/value cache's {}", T, L);
    rotate(q, kv, false);  // positions 0 … T − 1
    ops::copy_2d(kv, 0, T * W, buf, 0, L * W, B, T * W);
    ops::AttentionShape s{B, T, T, heads_, groups_, head_dim_, true};
    s.window_left = window_left_;
    Tensor context = q.new_empty({B, T, s.Hq * s.D});
    Tensor lse = q.new_empty({B, s.Hq, T}, DType::f32);
    ops::attention_forward(s, q, kv, ops::AttentionMask(Tensor(), Tensor(), sink(q.device())), context, lse);
    return context;
  }
  TESSERA_CHECK_SHAPE(T == 1, "attention: a cached step takes one token per row, got {}", q.str());
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t pos = cache.length(b);
    TESSERA_CHECK_SHAPE(pos < L, "attention: row {} of the key/value cache is full ({} tokens)", b, L);
    if (rotary_.dim > 0) {  // each row at its own position
      ops::RopeShape r = query_rope(rotary_, heads_, head_dim_, 1, 1, pos);
      Tensor qb = q.rows(b, b + 1);
      ops::rope_forward(r, qb);
      r.H = groups_;
      r.row_width = W;
      Tensor kb = kv.rows(b, b + 1);
      ops::rope_forward(r, kb);
    }
    ops::copy_2d(kv, b * W, W, buf, (b * L + pos) * W, W, 1, W);
  }
  // The keys 0 … max length, contiguous per row as the op reads them (one row: a view).
  const std::int64_t Tk = cache.step_keys();
  Tensor keys;
  if (B == 1) {
    keys = buf.reshape({L, W}).rows(0, Tk).reshape({1, Tk, W});
  } else {
    keys = kv.new_empty({B, Tk, W});
    ops::copy_2d(buf, 0, L * W, keys, 0, Tk * W, B, Tk * W);
  }
  const ops::AttentionShape s{B, 1, Tk, heads_, groups_, head_dim_, false};
  Tensor context = q.new_empty({B, 1, s.Hq * s.D});
  Tensor lse = q.new_empty({B, s.Hq, 1}, DType::f32);
  Tensor first;  // each row's one query sits at its own position
  if (window_left_ >= 0) {
    std::vector<std::int64_t> positions;
    for (std::int64_t b = 0; b < B; ++b) positions.push_back(cache.length(b));
    first = window_first_keys(window_left_, positions, q.device());
  }
  ops::attention_forward(s, q, keys, ops::AttentionMask(cache.step_key_mask(q.device()), first, sink(q.device())),
                         context, lse);
  return context;
}

Tensor Attention::backward(StepContext& ctx, const Tensor& dy, const AttentionInputs& in, Tensor* dmemory,
                           const Tensor& x_in) {
  if (keep_input_ == x_in.defined())
    throw Error(keep_input_ ? "attention: built to keep its input, backward takes none"
                            : "attention: built without keeping its input (keep_input = false), backward needs it");
  Tensor dcontext = output_.backward(ctx, dy);
  Saved saved = ctx.store().take<Saved>(this);
  const Tensor& q = saved.q;
  const std::int64_t B = q.size(0), T = q.size(1);
  ops::AttentionMask mask = checked_mask(in, B, T, saved.kv.size(1), q.device());
  // Context parallelism: the whole sequences' keys again, as forward gathered them.
  const CpGroup& cp = context_parallel(ctx);
  const Tensor kv = cp ? cp_gather_sequence(saved.kv, *cp) : saved.kv;
  if (cp) mask.query_position = query_positions(*cp, T, q.device());
  const ops::AttentionShape s = op_shape(ctx, B, T, kv.size(1));
  Tensor context, lse;
  if (recompute_core_) {  // selective recompute: the forward's output and lse again, bit for bit
    context = q.new_empty({B, T, s.Hq * s.D});
    lse = q.new_empty({B, s.Hq, T}, DType::f32);
    ops::attention_forward(s, q, kv, mask, context, lse);
  } else {
    context = saved.context;
    lse = saved.lse;
  }
  Tensor dq = q.new_empty(q.shape()), dkv = kv.new_empty(kv.shape());
  ops::attention_backward(s, dcontext, q, kv, mask, context, lse, dq, dkv);
  if (softmax_offset_) ops::attention_sink_backward(s, dcontext, context, lse, mask.sink, softmax_offset_->grad);
  if (cp) dkv = cp_reduce_scatter_sequence(dkv, *cp);  // every rank's part of this rank's keys' gradient
  rotate(dq, dkv, true, cp.get());  // gradients of the norms' (or projections') outputs, before rotation
  normalize_qk(ctx, dq, dkv, /*backward=*/true);
  Tensor dx, dsource;
  if (keep_input_) {
    dx = query_.backward(ctx, dq);
    dsource = key_value_->backward(ctx, dkv);
  } else {  // the caller's recomputed input, seen again as forward's projections saw it
    const Tensor x = projections_input(ctx, x_in);
    dx = query_.backward_with_input(ctx, dq, x);
    dsource = kind_ == AttentionKind::cross ? key_value_->backward(ctx, dkv) : key_value_->backward_with_input(ctx, dkv, x);
  }
  if (kind_ == AttentionKind::cross) {
    TESSERA_CHECK_SHAPE(dmemory && dmemory->defined() && dmemory->shape() == dsource.shape(),
                        "cross-attention backward needs a memory gradient buffer {}", dsource.str());
    ops::axpy(1.0f, dsource, *dmemory);
  } else {
    ops::axpy(1.0f, dsource, dx);  // both projections' partial input gradients, reduced once
  }
  if (sequence_parallel_applies(sequence_parallel_, tp_, ctx)) return gather_from_sequence_parallel_backward(dx, tp_);
  copy_to_tp_backward(dx, tp_);
  return dx;
}

}  // namespace tessera
