#include "bert_model.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bert_heads.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/pipeline_layers.hpp"

namespace tessera::bert {

TransformerBlockOptions bert_block_options(const BertOptions& o, TpGroup tp, bool sequence_parallel,
                                           std::int64_t first_layer, std::int64_t count, bool ends_model) {
  TransformerBlockOptions b = transformer_block_options(o.t, std::move(tp), sequence_parallel, first_layer, count, ends_model);
  b.layer.spec.self_attention = AttentionKind::padded_self;  // every token sees every real token
  return b;
}

double bert_flops_per_iteration(const BertOptions& o, std::int64_t sequences) {
  // Megatron-LM's accounting is the same for its encoders as for GPT (the heads' small GEMMs aside).
  return transformer_flops_per_iteration(o.t, sequences);
}

BertModel::BertModel(const BertOptions& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype)
    : o_(o),
      parallel_(std::move(parallel)),
      compute_dtype_(compute_dtype),
      tp_(tp_group(parallel_)),
      sequence_parallel_(parallel_ && parallel_->layout.sequence_parallel()),
      embedding_dropout_(o.t.hidden_dropout, 0) {
  const TransformerOptions& t = o.t;
  const int pp = parallel_ ? parallel_->layout.pp() : 1, stage = parallel_ ? parallel_->layout.pp_rank() : 0;
  const int vpp = parallel_ ? parallel_->layout.vpp() : 1;
  first_stage_ = stage == 0;
  last_stage_ = stage == pp - 1;
  if (first_stage_ || last_stage_) {
    word_embeddings_ = std::make_unique<VocabParallelEmbedding>("embedding.word_embeddings.weight", t.padded_vocab_size,
                                                                t.hidden_size, t.init_method_std, t.seed, tp_,
                                                                sequence_parallel_);
    word_embeddings_->weight().unpadded_rows = t.vocab_size;
    if (!(first_stage_ && last_stage_))
      word_embeddings_->weight().stage_tie = first_stage_ ? Parameter::StageTie::owner : Parameter::StageTie::copy;
  }
  if (first_stage_) {
    position_embeddings_ = std::make_unique<Parameter>("embedding.position_embeddings.weight",
                                                       Shape{t.max_position_embeddings, t.hidden_size});
    init_normal(position_embeddings_->value, t.init_method_std, t.seed, position_embeddings_->name);
    if (o.binary_head) {  // Megatron: token types only with the binary head (num_tokentypes = 2)
      tokentype_embeddings_ = std::make_unique<Parameter>("embedding.tokentype_embeddings.weight", Shape{2, t.hidden_size});
      init_normal(tokentype_embeddings_->value, t.init_method_std, t.seed, tokentype_embeddings_->name);
    }
    // Under sequence parallelism they act on this rank's token rows: their gradients are summed over tp.
    if (sequence_parallel_ && tp_size(tp_) > 1) {
      position_embeddings_->reduce_grad_over_tp = true;
      if (tokentype_embeddings_) tokentype_embeddings_->reduce_grad_over_tp = true;
    }
  }
  const ParallelSizes sizes = parallel_ ? parallel_->layout.sizes() : ParallelSizes{};
  for (int c = 0; c < vpp; ++c) {
    const LayerRange layers = chunk_layers(t.num_layers, sizes, stage, c);  // checked by the plugin
    chunks_.push_back(std::make_unique<TransformerBlock>(
        bert_block_options(o, tp_, sequence_parallel_, layers.first, layers.count, last_stage_ && c == vpp - 1), t.seed));
  }
  if (last_stage_) heads_ = std::make_unique<Heads>(o, tp_);
}

BertModel::~BertModel() = default;

bool BertModel::sequence_parallel(const StepContext& ctx) const {
  return sequence_parallel_applies(sequence_parallel_, tp_, ctx);
}

void BertModel::collect_parameters(std::vector<Parameter*>& out) {
  if (first_stage_) {
    word_embeddings_->collect_parameters(out);
    out.push_back(position_embeddings_.get());
    if (tokentype_embeddings_) out.push_back(tokentype_embeddings_.get());
  }
  for (auto& c : chunks_) c->collect_parameters(out);
  if (last_stage_) {
    heads_->collect_parameters(out);
    if (!first_stage_) word_embeddings_->collect_parameters(out);  // the tied copy
  }
}

FieldSpecs BertModel::batch_fields() const {
  const std::int64_t T = o_.t.seq_length;
  FieldSpecs f{{"tokens", DType::i32, {T}}, {"labels", DType::i32, {T}}, {"loss_mask", DType::f32, {T}},
               {"padding_mask", DType::u8, {T}}};
  if (o_.binary_head) {
    f.push_back({"types", DType::i32, {T}});
    f.push_back({"is_random", DType::i32, {1}});
  }
  return f;
}

std::vector<std::string> BertModel::loss_part_names() const {
  if (!o_.binary_head) return {};
  return {"lm loss", "sop loss"};
}

Batch BertModel::example_batch(std::int64_t micro_batch_size, std::int64_t vocab_size, std::uint64_t seed) const {
  Batch batch = Model::example_batch(micro_batch_size, vocab_size, seed);
  if (!o_.binary_head) return batch;
  const std::int64_t T = o_.t.seq_length;
  Tensor types = Tensor::zeros({micro_batch_size, T}, DType::i32), order = Tensor::zeros({micro_batch_size, 1}, DType::i32);
  for (std::int64_t b = 0; b < micro_batch_size; ++b) {
    for (std::int64_t t = T / 2; t < T; ++t) types.data<std::int32_t>()[b * T + t] = 1;
    order.data<std::int32_t>()[b] = static_cast<std::int32_t>((seed + static_cast<std::uint64_t>(b)) % 2);
  }
  batch.set("types", types);
  batch.set("is_random", order);
  return batch;
}

std::vector<TensorSpec> BertModel::stage_boundary(std::int64_t micro_batch_size, int /*boundary*/) const {
  return {{activation_shape(micro_batch_size), compute_dtype_}};
}

Shape BertModel::activation_shape(std::int64_t micro_batch_size) const {
  if (sequence_parallel_ && tp_size(tp_) > 1)
    return {micro_batch_size * o_.t.seq_length / tp_size(tp_), o_.t.hidden_size};
  return {micro_batch_size, o_.t.seq_length, o_.t.hidden_size};
}

TransformerBlock& BertModel::chunk(int c) {
  if (c < 0 || c >= static_cast<int>(chunks_.size()))
    throw Error(fmt::format("BERT: no model chunk {} on this rank (it holds {})", c, chunks_.size()));
  return *chunks_[static_cast<std::size_t>(c)];
}

Tensor BertModel::embed(StepContext& ctx, const Batch& batch) {
  const Tensor& tokens = batch.get("tokens");
  TESSERA_CHECK_SHAPE(tokens.dim() == 2 && tokens.dtype() == DType::i32, "BERT expects tokens i32 [B,T], got {}",
                      tokens.str());
  const std::int64_t B = tokens.size(0), T = tokens.size(1), C = o_.t.hidden_size, N = B * T;
  if (T > o_.t.max_position_embeddings)
    throw ShapeError(fmt::format("sequence of {} tokens exceeds max_position_embeddings {}", T,
                                 o_.t.max_position_embeddings));
  Tensor x = word_embeddings_->forward(ctx, tokens.reshape({N}));
  // Under sequence parallelism x is this rank's token rows: their positions, types and dropout mask.
  const bool sp = sequence_parallel(ctx);
  const SequenceShard rows = sp ? sequence_shard(N, tp_) : SequenceShard{0, N};
  Tensor pos = tokens.new_empty({rows.rows}, DType::i32);
  ops::arange_mod(pos, rows.first, T);
  ops::embedding_forward(pos, position_embeddings_->weight(), x, /*accumulate=*/true);
  if (ctx.training) ctx.store().save(position_embeddings_.get(), SavedTensor{pos});
  if (tokentype_embeddings_) {
    Tensor types = batch.get("types").reshape({N}).rows(rows.first, rows.first + rows.rows);
    ops::embedding_forward(types, tokentype_embeddings_->weight(), x, /*accumulate=*/true);
    if (ctx.training) ctx.store().save(tokentype_embeddings_.get(), SavedTensor{types});
  }
  Tensor y = embedding_dropout_.forward(ctx, x, TokenRows{rows.first});
  return sp ? y : y.reshape({B, T, C});
}

void BertModel::embed_backward(StepContext& ctx, Tensor dx) {
  Tensor pos = ctx.store().take<SavedTensor>(position_embeddings_.get()).x;
  const std::int64_t N = pos.numel(), C = o_.t.hidden_size;  // sequence parallel: this rank's rows
  dx = embedding_dropout_.backward(ctx, dx.reshape({N, C}), TokenRows{sequence_parallel(ctx) ? tp_rank(tp_) * N : 0});
  word_embeddings_->backward(ctx, dx);
  ops::embedding_backward(pos, dx, position_embeddings_->grad);
  if (tokentype_embeddings_)
    ops::embedding_backward(ctx.store().take<SavedTensor>(tokentype_embeddings_.get()).x, dx, tokentype_embeddings_->grad);
}

StageOutput BertModel::forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs, int c) {
  TransformerBlock& block = chunk(c);
  const Tensor& tokens = batch.get("tokens");
  ctx.seq_length = tokens.size(1);
  AttentionInputs in;
  in.key_mask = batch.get("padding_mask");  // u8 [B,T]: every stage masks the same padding
  Tensor x;
  if (starts_model(c)) {
    x = embed(ctx, batch);
  } else {
    const Shape expected = activation_shape(tokens.size(0));
    TESSERA_CHECK_SHAPE(inputs.size() == 1 && inputs[0].defined() && inputs[0].shape() == expected &&
                            inputs[0].dtype() == compute_dtype_,
                        "BERT stage input must be one {}[{}], got {} tensor(s)", dtype_name(compute_dtype_),
                        fmt::join(expected, ", "), inputs.size());
    x = inputs[0];
  }
  x = block.forward(ctx, x, in);
  if (!ends_model(c)) return {{x}, 0.0, {}};
  const HeadLosses l = head_losses(ctx, x, batch);
  StageOutput out;
  out.loss = l.lm + l.sop;
  if (o_.binary_head) out.loss_parts = {l.lm, l.sop};
  return out;
}

std::vector<Tensor> BertModel::backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int c) {
  TransformerBlock& block = chunk(c);
  TESSERA_CHECK_SHAPE(ends_model(c) || (output_grads.size() == 1 && output_grads[0].defined()),
                      "a BERT stage before the last needs its output's gradient (one tensor), got {}",
                      output_grads.size());
  Tensor dx = block.backward(ctx, ends_model(c) ? ctx.store().take<SavedTensor>(this).x : output_grads[0]).dx;
  if (!starts_model(c)) return {dx};
  embed_backward(ctx, dx);
  return {};
}

double BertModel::flops_per_iteration(std::int64_t sequences) const { return bert_flops_per_iteration(o_, sequences); }

std::string BertModel::describe() const {
  std::string layers;
  for (const auto& c : chunks_) layers += (layers.empty() ? "" : ", ") + c->describe();
  const TransformerOptions& t = o_.t;
  return fmt::format("BERT: {} layers, hidden {}, {} heads, ffn {}, seq {}, vocab {} (padded {}), binary head {}, "
                     "tensor parallel {}{}, pipeline stage {} of {} ({})",
                     t.num_layers, t.hidden_size, t.num_attention_heads, t.ffn_hidden_size, t.seq_length, t.vocab_size,
                     t.padded_vocab_size, o_.binary_head ? "on" : "off", tp_size(tp_),
                     sequence_parallel_ && tp_size(tp_) > 1 ? " with sequence parallelism" : "",
                     parallel_ ? parallel_->layout.pp_rank() : 0, parallel_ ? parallel_->layout.pp() : 1, layers);
}

}  // namespace tessera::bert
