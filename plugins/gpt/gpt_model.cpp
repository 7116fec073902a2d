#include "gpt_model.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/nn/kv_cache.hpp"
#include "tessera/ops.hpp"
#include "tessera/parallel/pipeline_layers.hpp"
#include "tessera/train/iteration.hpp"

namespace tessera::gpt {

namespace {

// Dropout sites of the multi-token prediction depths' embeddings (the model's is site 0; the
// layers' nn/transformer_layer.hpp lists).
constexpr std::uint64_t kMtpEmbeddingDropoutSites = std::uint64_t{4} << 32;

// x [B,T] shifted `by` places left in each row, zeros shifted in (Megatron-Core's roll_tensor with
// the rolled-in end zeroed).
Tensor shifted_left(const Tensor& x, std::int64_t by) {
  const std::int64_t B = x.size(0), T = x.size(1);
  Tensor out = x.new_zeros({B, T});
  if (by < T) ops::copy_2d(x, by, T, out, 0, T, B, T - by);
  return out;
}

// A multi-token prediction depth's run for one microbatch: its store (the shared embedding and
// head save there under their usual keys) and its loss, reported in backward.
struct MtpRun {
  std::unique_ptr<ActivationStore> store;
  double loss = 0;
  std::vector<Tensor> tensors() const { return store->tensors(); }
};

}  // namespace

std::vector<std::string> gpt_metric_names(const GptOptions& o) {
  std::vector<std::int64_t> moe_layers = o.moe_layer_indices();
  if (o.num_layers > 0 && o.moe_layer(o.num_layers - 1))  // the depths' layers are built like the last
    for (std::int64_t d = 0; d < o.mtp_physical_layers(); ++d) moe_layers.push_back(o.num_layers + d);
  std::vector<std::string> names = moe_metric_names(o.moe, moe_layers);
  for (std::int64_t d = 0; d < o.mtp_num_layers; ++d) names.push_back(mtp_loss_name(d));
  return names;
}

std::string llama_style_description(const GptOptions& o) {
  std::vector<std::string> parts;
  if (o.kv_channels * o.num_attention_heads != o.hidden_size) parts.push_back(fmt::format("kv_channels {}", o.kv_channels));
  if (o.rope)
    parts.push_back(fmt::format("rope on {} channels (base {}{}{})", o.rotary_dim(), o.rotary_base,
                                o.rotary_interleaved ? ", interleaved" : "",
                                o.rope_yarn.factor > 0.0 ? fmt::format(", YaRN factor {} of {} positions",
                                                                       o.rope_yarn.factor, o.rope_yarn.original_context)
                                                         : ""));
  if (!o.rope && !o.learned_positions) parts.push_back("no position embedding");
  if (!o.nope_layer_pattern.empty())
    parts.push_back(fmt::format("no rope in {} of {} layers",
                                std::count(o.nope_layer_pattern.begin(), o.nope_layer_pattern.end(), true), o.num_layers));
  if (o.rms_norm) parts.push_back("RMSNorm");
  if (o.qk_layernorm) parts.push_back("q/k norms");
  if (o.window_left >= 0)
    parts.push_back(fmt::format("sliding window of {} keys{}", o.window_left + 1,
                                o.window_layer_pattern.empty()
                                    ? ""
                                    : fmt::format(" in {} of {} layers", o.window_layers(), o.num_layers)));
  if (o.softmax_type == AttentionOptions::SoftmaxType::learnable) parts.push_back("learned attention sinks");
  if (o.softmax_type == AttentionOptions::SoftmaxType::off_by_one) parts.push_back("off-by-one softmax");
  if (o.swiglu) parts.push_back(describe_gated_linear_unit(o.glu));
  if (o.squared_relu) parts.push_back("squared ReLU");
  if (o.moe.router.experts > 0)
    parts.push_back(describe_moe(o.moe) + (o.moe_layer_pattern.empty()
                                               ? ""
                                               : fmt::format(" in {} of {} layers", o.moe_layers(), o.num_layers)));
  if (o.untie_embeddings_and_output_weights) parts.push_back("untied output layer");
  if (o.mtp_num_layers > 0)
    parts.push_back(fmt::format("multi-token prediction of {} (loss weight {})", describe_mtp_depths(o),
                                o.mtp_loss_scaling_factor));
  if (!o.add_bias_linear) parts.push_back(o.add_qkv_bias ? "biases on q, k, v only" : "no linear biases");
  return parts.empty() ? "" : fmt::format(", {}", fmt::join(parts, ", "));
}

TransformerBlockOptions gpt_block_options(const GptOptions& o, TpGroup tp, bool sequence_parallel,
                                          std::int64_t first_layer, std::int64_t count, bool ends_model) {
  return transformer_block_options(o, std::move(tp), sequence_parallel, first_layer, count, ends_model);
}

GptModel::GptModel(const GptOptions& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype)
    : o_(o),
      parallel_(std::move(parallel)),
      compute_dtype_(compute_dtype),
      tp_(tp_group(parallel_)),
      sequence_parallel_(parallel_ && parallel_->layout.sequence_parallel()),
      cp_(parallel_ && parallel_->layout.cp() > 1 ? parallel_->groups.cp : nullptr),
      embedding_dropout_(o.hidden_dropout, 0) {
  const int pp = parallel_ ? parallel_->layout.pp() : 1, stage = parallel_ ? parallel_->layout.pp_rank() : 0;
  const int vpp = parallel_ ? parallel_->layout.vpp() : 1;
  first_stage_ = stage == 0;
  last_stage_ = stage == pp - 1;
  const bool tied = !o.untie_embeddings_and_output_weights, mtp = o.mtp_num_layers > 0;
  // The last stage needs the word embedding for the tied head or for the multi-token prediction's
  // lookups, and the position table for the latter: with pp > 1 copies of the first stage's.
  const auto stage_tie = [&] { return first_stage_ ? Parameter::StageTie::owner : Parameter::StageTie::copy; };
  if (first_stage_ || (last_stage_ && (tied || mtp))) {
    word_embeddings_ = std::make_unique<VocabParallelEmbedding>("embedding.word_embeddings.weight", o.padded_vocab_size,
                                                                o.hidden_size, o.init_method_std, o.seed, tp_,
                                                                sequence_parallel_);
    word_embeddings_->weight().unpadded_rows = o.vocab_size;  // the padding depends on tp
    if ((tied || mtp) && !(first_stage_ && last_stage_)) word_embeddings_->weight().stage_tie = stage_tie();
  }
  if (last_stage_ && !tied) {
    // Megatron-Core's ColumnParallelLinear(h, padded_vocab, bias=False): this rank's vocabulary rows.
    const std::int64_t rows = tp_shard_size(o.padded_vocab_size, tp_, "padded vocabulary size");
    output_layer_ = std::make_unique<Parameter>("output_layer.weight", Shape{rows, o.hidden_size});
    init_normal(output_layer_->value, o.init_method_std, o.seed, output_layer_->name, tp_rank(tp_) * rows * o.hidden_size);
    output_layer_->tp_split_dim = 0;
    output_layer_->unpadded_rows = o.vocab_size;
    output_layer_->embedding_or_output = true;  // [optimizer] decoupled_lr
  }
  if ((first_stage_ || (last_stage_ && mtp)) && o.learned_positions) {
    position_embeddings_ = std::make_unique<Parameter>("embedding.position_embeddings.weight",
                                                       Shape{o.max_position_embeddings, o.hidden_size});
    init_normal(position_embeddings_->value, o.init_method_std, o.seed, position_embeddings_->name);
    if (mtp && !(first_stage_ && last_stage_)) position_embeddings_->stage_tie = stage_tie();
  }
  // Global layer indices: names, initialisation and dropout masks do not depend on the split (the
  // plugin checked it: parallel/pipeline_layers.hpp).
  const ParallelSizes sizes = parallel_ ? parallel_->layout.sizes() : ParallelSizes{};
  GptOptions built = o;  // with the expert-parallel group, which the options read from [model] lack
  if (parallel_) built.moe.expert_group = parallel_->groups.ep;
  for (int c = 0; c < vpp; ++c) {
    const LayerRange layers = chunk_layers(o.num_layers, sizes, stage, c);
    chunks_.push_back(std::make_unique<TransformerBlock>(
        gpt_block_options(built, tp_, sequence_parallel_, layers.first, layers.count, last_stage_ && c == vpp - 1),
        o.seed));
  }
  if (last_stage_ && o.mtp_num_layers > 0) {  // multi-token prediction depths, each built like the last layer
    const TransformerBlockOptions last_layer =
        gpt_block_options(built, tp_, sequence_parallel_, o.num_layers - 1, 1, /*ends_model=*/true);
    for (std::int64_t d = 0; d < o.mtp_physical_layers(); ++d)
      mtp_.push_back(std::make_unique<MtpDepth>(o, d, mtp_block_options(last_layer, o.num_layers, d)));
    for (std::int64_t d = 0; d < o.mtp_num_layers; ++d)
      mtp_dropouts_.emplace_back(o.hidden_dropout, kMtpEmbeddingDropoutSites + static_cast<std::uint64_t>(d));
  }
  mark_token_shard_grads();
}

// Under sequence parallelism the position embedding is applied to token shards (the blocks mark
// their own norms): its gradient comes from this rank's tokens only, and the trainer sums it over tp
// once per iteration.
void GptModel::mark_token_shard_grads() {
  if (sequence_parallel_ && tp_size(tp_) > 1 && position_embeddings_) position_embeddings_->reduce_grad_over_tp = true;
}

bool GptModel::sequence_parallel(const StepContext& ctx) const {
  return sequence_parallel_applies(sequence_parallel_, tp_, ctx);
}

void GptModel::collect_parameters(std::vector<Parameter*>& out) {
  if (first_stage_) {
    word_embeddings_->collect_parameters(out);
    if (position_embeddings_) out.push_back(position_embeddings_.get());
  }
  for (auto& c : chunks_) c->collect_parameters(out);  // the last also holds the final norm
  if (output_layer_) out.push_back(output_layer_.get());  // untied head
  if (!first_stage_) {  // the last stage's copies: the tied head's, the multi-token prediction's
    if (word_embeddings_) word_embeddings_->collect_parameters(out);
    if (position_embeddings_) out.push_back(position_embeddings_.get());
  }
  for (auto& d : mtp_) d->collect_parameters(out);
}

FieldSpecs GptModel::batch_fields() const {
  const std::int64_t T = o_.seq_length;
  // Read when the data has them (gpt_indexed's reset_position_ids, reset_attention_mask).
  return {{"tokens", DType::i32, {T}},
          {"labels", DType::i32, {T}},
          {"loss_mask", DType::f32, {T}},
          {"position_ids", DType::i32, {T}, /*optional=*/true},
          {"document_start", DType::i32, {T}, /*optional=*/true}};
}

std::vector<TensorSpec> GptModel::stage_boundary(std::int64_t micro_batch_size, int /*boundary*/) const {
  return {{activation_shape(micro_batch_size), compute_dtype_}};
}

Shape GptModel::activation_shape(std::int64_t micro_batch_size) const {
  // Context parallelism: the rank's T/cp tokens of each sequence; sequence parallelism: stages pass
  // their token shards of those (the plugin checked that cp and tp divide T).
  const std::int64_t T = o_.seq_length / (cp_ ? cp_->size() : 1);
  if (sequence_parallel_ && tp_size(tp_) > 1) return {micro_batch_size * T / tp_size(tp_), o_.hidden_size};
  return {micro_batch_size, T, o_.hidden_size};
}

Batch GptModel::this_ranks_tokens(const Batch& batch) const {
  if (!cp_) return batch;
  Batch mine = batch;
  // Learned positions are those in the whole sequence: 0 … T − 1 unless the data gives its own
  // (Megatron-LM's get_batch likewise slices position_ids it always has).
  if (position_embeddings_ && !batch.has("position_ids")) {
    const Tensor& tokens = batch.get("tokens");
    Tensor positions = tokens.new_empty(tokens.shape(), DType::i32);
    Tensor flat = positions.reshape({positions.numel()});
    ops::arange_mod(flat, 0, tokens.size(1));
    mine.set("position_ids", positions);
  }
  for (const char* field : {"tokens", "labels", "loss_mask", "position_ids", "document_start"})
    if (mine.has(field)) mine.set(field, cp_take_chunks(mine.get(field), cp_->size(), cp_->rank()));
  return mine;
}

Tensor GptModel::embed(StepContext& ctx, const Tensor& tokens, const Tensor& positions, Dropout& dropout) {
  TESSERA_CHECK_SHAPE(tokens.dim() == 2 && tokens.dtype() == DType::i32, "GPT expects tokens i32 [B,T], got {}", tokens.str());
  const std::int64_t B = tokens.size(0), T = tokens.size(1), C = o_.hidden_size;
  if (T > o_.max_position_embeddings && position_embeddings_)
    throw ShapeError(fmt::format("sequence of {} tokens exceeds max_position_embeddings {}", T, o_.max_position_embeddings));
  Tensor ids = tokens.reshape({B * T});
  Tensor x = word_embeddings_->forward(ctx, ids);
  // Under sequence parallelism x is this rank's token rows: add their positions, and drop out with
  // their part of the one-process mask.
  const bool sp = sequence_parallel(ctx);
  const SequenceShard rows = sp ? sequence_shard(B * T, tp_) : SequenceShard{0, B * T};
  // Position ids of those rows: the given ones (under context parallelism always given: the
  // rank's tokens' positions in the whole sequence, this_ranks_tokens), or t of each row (b, t) of
  // the flattened [B, T]. With rope the positions enter in attention instead (at 0 … T − 1, as
  // Megatron-Core's rotary embedding ignores position_ids).
  if (position_embeddings_) {
    Tensor pos = positions;
    if (pos.defined()) {
      TESSERA_CHECK_SHAPE(pos.dtype() == DType::i32 && pos.numel() == B * T,
                          "GPT: positions must be i32 [{}], got {}", B * T, pos.str());
      pos = pos.reshape({B * T}).rows(rows.first, rows.first + rows.rows);
    } else {
      pos = tokens.new_empty({rows.rows}, DType::i32);
      ops::arange_mod(pos, rows.first, T);
    }
    ops::embedding_forward(pos, position_embeddings_->weight(), x, /*accumulate=*/true);
    if (ctx.training) ctx.store().save(position_embeddings_.get(), SavedTensor{pos});
  }
  Tensor y = dropout.forward(ctx, x, TokenRows::of(ctx, rows.first));
  return sp ? y : y.reshape({B, T, C});
}

void GptModel::embed_backward(StepContext& ctx, const Tensor& dy, Dropout& dropout) {
  const std::int64_t C = o_.hidden_size, N = dy.numel() / C;  // sequence parallel: this rank's N rows
  Tensor dx = dropout.backward(ctx, dy.reshape({N, C}), TokenRows::of(ctx, sequence_parallel(ctx) ? tp_rank(tp_) * N : 0));
  word_embeddings_->backward(ctx, dx);
  if (position_embeddings_) {
    Tensor pos = ctx.store().take<SavedTensor>(position_embeddings_.get()).x;
    ops::embedding_backward(pos, dx, position_embeddings_->grad);
  }
}

TransformerBlock& GptModel::chunk(int c) {
  if (c < 0 || c >= static_cast<int>(chunks_.size()))
    throw Error(fmt::format("GPT: no model chunk {} on this rank (it holds {})", c, chunks_.size()));
  return *chunks_[static_cast<std::size_t>(c)];
}

StageOutput GptModel::forward_stage(StepContext& ctx, const Batch& whole, const std::vector<Tensor>& inputs, int c) {
  TransformerBlock& block = chunk(c);
  ctx.context_parallel = cp_;  // training and evaluation run on the rank's chunks of each sequence
  const Batch batch = this_ranks_tokens(whole);
  const Tensor& tokens = batch.get("tokens");
  ctx.seq_length = tokens.size(1);  // sequence-parallel attention regroups rows into sequences
  Tensor x;
  if (starts_model(c)) {
    x = embed(ctx, tokens, batch.has("position_ids") ? batch.get("position_ids") : Tensor(), embedding_dropout_);
  } else {
    const Shape expected = activation_shape(tokens.size(0));
    TESSERA_CHECK_SHAPE(inputs.size() == 1 && inputs[0].defined() && inputs[0].shape() == expected &&
                            inputs[0].dtype() == compute_dtype_,
                        "GPT stage input must be one {}[{}], got {} tensor(s){}", dtype_name(compute_dtype_),
                        fmt::join(expected, ", "),
                        inputs.size(), inputs.size() == 1 && inputs[0].defined() ? ": " + inputs[0].str() : "");
    x = inputs[0];
  }
  AttentionInputs in;  // documents attend only themselves where the data marks them
  if (batch.has("document_start")) in.first_key = batch.get("document_start");
  x = block.forward(ctx, x, in);  // ending the model: through the final norm too
  if (!ends_model(c)) return {{x}, 0.0, {}};
  const HeadLoss main = head_loss(ctx, x, batch.get("labels"), batch.get("loss_mask"), 1.0f);
  if (ctx.training) {
    ctx.store().save(this, SavedTensor{main.dh});
    if (!mtp_.empty()) mtp_forward(ctx, batch, x, in);
  }
  return {{}, main.loss, {}};
}

void GptModel::mtp_forward(StepContext& ctx, const Batch& batch, const Tensor& h0, const AttentionInputs& in) {
  Tensor tokens = batch.get("tokens"), labels = batch.get("labels"), mask = batch.get("loss_mask");
  const std::int64_t B = tokens.size(0), T = tokens.size(1);
  Tensor positions;
  if (batch.has("position_ids")) {
    positions = batch.get("position_ids").reshape({B, T});
  } else {
    positions = tokens.new_empty({B, T}, DType::i32);
    ops::arange_mod(positions, 0, T);
  }
  const float weight = static_cast<float>(o_.mtp_loss_scaling_factor / static_cast<double>(o_.mtp_num_layers));
  Tensor h = h0;
  for (std::size_t d = 0; d < mtp_dropouts_.size(); ++d) {
    // Depth d predicts, at position i, the label of position i + d + 1 from token i + d + 1.
    tokens = shifted_left(tokens, 1);
    positions = shifted_left(positions, 1);
    labels = shifted_left(labels, 1);
    mask = shifted_left(mask.reshape({B, T}), 1);
    MtpRun run{std::make_unique<ActivationStore>()};
    StepContext run_ctx = mtp_context(ctx, *run.store, d);
    Tensor e = embed(run_ctx, tokens, positions.reshape({B * T}), mtp_dropouts_[d]);
    h = mtp_depth(d).forward(run_ctx, e, h, in);
    HeadLoss depth = head_loss(run_ctx, h, labels, mask, weight);
    run_ctx.store().save(this, SavedTensor{depth.dh});
    run.loss = depth.loss;
    ctx.store().save(&mtp_dropouts_[d], std::move(run));  // one key per depth, shared layer or not
  }
}

MtpDepth& GptModel::mtp_depth(std::size_t d) { return *mtp_[o_.mtp_use_repeated_layer ? 0 : d]; }

StepContext GptModel::mtp_context(const StepContext& ctx, ActivationStore& store, std::size_t d) const {
  StepContext c = ctx.with_store(store);
  if (o_.mtp_use_repeated_layer && d > 0) {
    // The shared layer's dropout sites are the same at every depth: a seed of the depth's own draws
    // other masks.
    c.seed = hash_name(ctx.seed + d, "mtp repeated layer");
    // Backward runs the depths last to first, so depth 0 adds last to the shared gradients: only it
    // may report them final.
    c.grad_listener = nullptr;
  }
  return c;
}

Tensor GptModel::mtp_backward(StepContext& ctx) {
  Tensor dh;  // the gradient w.r.t. depth d's output from depth d + 1
  for (std::size_t d = mtp_dropouts_.size(); d-- > 0;) {
    MtpRun run = ctx.store().take<MtpRun>(&mtp_dropouts_[d]);
    StepContext run_ctx = mtp_context(ctx, *run.store, d);
    Tensor dy = run_ctx.store().take<SavedTensor>(this).x;
    if (dh.defined()) ops::add(dy, dh, dy);
    MtpDepth::Grads g = mtp_depth(d).backward(run_ctx, dy);
    embed_backward(run_ctx, g.de, mtp_dropouts_[d]);
    if (!run.store->empty())
      throw Error(fmt::format("GPT multi-token prediction depth {}: backward left saved activations behind", d + 1));
    if (ctx.metrics) ctx.metrics->add(mtp_loss_name(static_cast<std::int64_t>(d)), run.loss);
    dh = g.dh;
  }
  return dh;
}

std::optional<double> GptModel::loss_tokens(const Batch& batch) const { return ops::sum(batch.get("loss_mask")); }

GptModel::HeadLoss GptModel::head_loss(StepContext& ctx, const Tensor& h, const Tensor& labels_bt, const Tensor& mask_bt,
                                       float weight) {
  // V: this rank's vocabulary shard, ids [first, first + V).
  const std::int64_t N = labels_bt.numel(), C = o_.hidden_size;
  // The table in the compute dtype; its gradient f32.
  Parameter& head_param = head_weight();
  const Tensor& table = head_param.weight();
  Tensor& table_grad = head_param.grad;
  const std::int64_t first = tp_rank(tp_) * table.size(0);  // the vocabulary shard, as the embedding's
  // The head needs whole rows: under sequence parallelism gather every rank's rows first.
  const bool sp = sequence_parallel(ctx);
  Tensor h2 = sp ? gather_from_sequence_parallel_forward(h, tp_) : h.reshape({N, C});  // else a view
  Tensor labels = labels_bt.reshape({N});
  Tensor mask = mask_bt.reshape({N});
  // Under context parallelism the loss is the mean over every rank's tokens of the sequences.
  const CpGroup& cp = active_context_parallel(ctx);
  const double mask_sum = cp ? all_reduce_sum(*cp, ops::sum(mask)) : ops::sum(mask);
  // A microbatch with nothing to learn from (all masked) contributes neither loss nor gradient.
  const float grad_scale = mask_sum > 0 ? static_cast<float>(ctx.loss_grad_scale * weight / mask_sum) : 0.0f;

  TiedLmHead head;
  head.table = &table;
  head.table_grad = &table_grad;
  head.first_id = first;
  head.tp = tp_;
  head.chunk_elements = backend_of(h2.device()).chunk_elements_hint();
  TiedLmHeadOutput out = tied_lm_head_loss(head, h2, labels, mask, grad_scale, ctx.training);
  Tensor& losses = out.losses;
  Tensor& dh = out.dh;
  if (ctx.training) {
    // Each rank's dh covers its vocabulary columns only: summed over tp, and under sequence
    // parallelism only this rank's rows are kept (the gather's backward).
    if (sp)
      dh = gather_from_sequence_parallel_backward(dh, tp_);
    else
      copy_to_tp_backward(dh, tp_);
    dh = dh.reshape(h.shape());
  }
  // Σ loss·mask / Σ mask
  Tensor total = losses.new_empty({1}, DType::f64);
  ops::masked_sum(losses, mask, total);
  const double loss_sum = cp ? all_reduce_sum(*cp, total.item()) : total.item();
  return {mask_sum > 0 ? loss_sum / mask_sum : 0.0, dh};
}

std::vector<Tensor> GptModel::backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int c) {
  TransformerBlock& block = chunk(c);
  TESSERA_CHECK_SHAPE(ends_model(c) || (output_grads.size() == 1 && output_grads[0].defined()),
                      "a GPT stage before the last needs its output's gradient (one tensor), got {}",
                      output_grads.size());
  ctx.context_parallel = cp_;
  Tensor dy;
  if (ends_model(c)) {
    dy = ctx.store().take<SavedTensor>(this).x;
    if (!mtp_.empty()) ops::add(dy, mtp_backward(ctx), dy);
  } else {
    dy = output_grads[0];
  }
  Tensor dx = block.backward(ctx, dy).dx;
  if (!starts_model(c)) return {dx};
  embed_backward(ctx, dx, embedding_dropout_);
  return {};
}

Tensor GptModel::inference_forward(StepContext& ctx, const Tensor& tokens, const Tensor& positions) {
  ctx.training = false;
  ctx.allow_sequence_parallel = false;  // any B·T; nothing saved that sharding could shrink
  if (!first_stage_ || !last_stage_ || chunks_.size() != 1)
    throw Error("GPT inference needs the whole model in one process (pp = 1)");
  return chunks_[0]->forward(ctx, embed(ctx, tokens, positions, embedding_dropout_));  // through the final norm
}

Tensor GptModel::head_logits(const Tensor& last) {
  const std::int64_t B = last.size(0);
  const Tensor& table = head_weight().weight();
  const std::int64_t V = table.size(0);  // this rank's vocabulary shard
  Tensor logits = last.new_empty({B, V}, DType::f32);
  ops::matmul(last, false, table, true, logits);
  // Every rank returns the full vocabulary: gather the shards ([tp, B, V] in rank order).
  const int tp = tp_size(tp_);
  Tensor gathered = logits;
  if (tp > 1) {
    gathered = logits.new_empty({tp * B * V});
    tp_->all_gather(logits.reshape({B * V}), gathered);
  }
  Tensor out = logits.new_empty({B, o_.vocab_size});
  for (int r = 0; r < tp; ++r) {
    const std::int64_t first = r * V, count = std::clamp<std::int64_t>(o_.vocab_size - first, 0, V);
    if (count > 0) ops::copy_2d(gathered, r * B * V, V, out, first, o_.vocab_size, B, count);
  }
  return out;
}

Tensor GptModel::next_token_logits(const Tensor& tokens) {
  ActivationStore store;
  StepContext ctx{store};
  Tensor h = inference_forward(ctx, tokens, Tensor());
  const std::int64_t B = tokens.size(0), T = tokens.size(1), C = o_.hidden_size;
  Tensor last = h.new_empty({B, C});
  ops::copy_2d(h, (T - 1) * C, T * C, last, 0, C, B, C);  // row T−1 of each sequence
  return head_logits(last);
}

// A cached generation: the model and its KvCache.
class GptSession : public GenerationSession {
 public:
  GptSession(GptModel& model, std::int64_t batch, std::int64_t capacity) : model_(model), cache_(batch, capacity) {}
  Tensor prefill(const std::vector<std::vector<std::int32_t>>& prompts);
  Tensor step(const std::vector<std::int32_t>& next) override;
  std::int64_t batch() const override { return cache_.batch(); }
  std::int64_t length(std::int64_t row) const override { return cache_.length(row); }
  std::int64_t capacity() const override { return cache_.capacity(); }
  void select_rows(const std::vector<std::int64_t>& rows) override { cache_.select_rows(rows); }

 private:
  Tensor forward(const Tensor& tokens, const Tensor& positions) {
    ActivationStore store;
    StepContext ctx{store};
    ctx.kv_cache = &cache_;
    return model_.inference_forward(ctx, tokens, positions);
  }
  void check_id(std::int32_t id, std::size_t row) const {
    if (id < 0 || id >= model_.o_.vocab_size)
      throw Error(fmt::format("GPT generation: token id {} of row {} is outside the vocabulary [0, {})", id, row,
                              model_.o_.vocab_size));
  }
  GptModel& model_;
  KvCache cache_;
};

Tensor GptSession::prefill(const std::vector<std::vector<std::int32_t>>& prompts) {
  const std::int64_t B = cache_.batch(), C = model_.o_.hidden_size;
  std::int64_t T = 0;
  std::vector<std::int64_t> lengths;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    const std::int64_t n = static_cast<std::int64_t>(prompts[b].size());
    if (n < 1 || n > model_.o_.seq_length)
      throw Error(fmt::format("GPT generation: prompt {} has {} tokens; it needs 1 … {} (the sequence length)", b, n,
                              model_.o_.seq_length));
    for (std::int32_t id : prompts[b]) check_id(id, b);
    lengths.push_back(n);
    T = std::max(T, n);
  }
  // Right-padded (with id 0): causal attention keeps the padding from every real token.
  std::vector<std::int32_t> ids(static_cast<std::size_t>(B * T), 0);
  for (std::size_t b = 0; b < prompts.size(); ++b)
    std::copy(prompts[b].begin(), prompts[b].end(), ids.begin() + static_cast<std::ptrdiff_t>(b * T));
  const Tensor& table = model_.head_weight().weight();
  Tensor tokens = Tensor::from<std::int32_t>({B, T}, ids).to(table.device());
  Tensor h = forward(tokens, Tensor());
  cache_.finish_prefill(lengths);
  Tensor last = h.new_empty({B, C});
  for (std::int64_t b = 0; b < B; ++b) ops::copy_2d(h, (b * T + lengths[b] - 1) * C, C, last, b * C, C, 1, C);
  return model_.head_logits(last);
}

Tensor GptSession::step(const std::vector<std::int32_t>& next) {
  const std::int64_t B = cache_.batch();
  if (static_cast<std::int64_t>(next.size()) != B)
    throw Error(fmt::format("GPT generation: a step needs one token per row ({}), got {}", B, next.size()));
  for (std::int64_t b = 0; b < B; ++b) {
    check_id(next[static_cast<std::size_t>(b)], static_cast<std::size_t>(b));
    if (cache_.length(b) >= cache_.capacity())
      throw Error(fmt::format("GPT generation: row {} already holds {} tokens, the session's capacity; its "
                              "key/value cache is full", b, cache_.capacity()));
  }
  const Tensor& table = model_.head_weight().weight();
  Tensor tokens = Tensor::from<std::int32_t>({B, 1}, next).to(table.device());
  Tensor h = forward(tokens, cache_.step_positions(table.device()));
  cache_.finish_step();
  return model_.head_logits(h.reshape({B, model_.o_.hidden_size}));
}

SessionStart GptModel::start_session(const std::vector<std::vector<std::int32_t>>& prompts, std::int64_t capacity) {
  if (prompts.empty()) throw Error("GPT generation: no prompts");
  // Sized for what the caller will generate, not the sequence length: a cache of many short rows at
  // the full length was most of a request's memory. Prompts too long are refused by prefill.
  std::int64_t longest = 1;
  for (const auto& p : prompts) longest = std::max(longest, static_cast<std::int64_t>(p.size()));
  if (capacity <= 0 || capacity > o_.seq_length) capacity = o_.seq_length;
  capacity = std::max(capacity, std::min(longest, o_.seq_length));
  auto session = std::make_unique<GptSession>(*this, static_cast<std::int64_t>(prompts.size()), capacity);
  Tensor logits = session->prefill(prompts);
  return {std::move(session), std::move(logits)};
}

double gpt_flops_per_iteration(const GptOptions& o, std::int64_t sequences) {
  return transformer_flops_per_iteration(o, sequences);
}

double GptModel::flops_per_iteration(std::int64_t sequences) const { return gpt_flops_per_iteration(o_, sequences); }

std::string GptModel::describe() const {
  std::string layers;
  for (const auto& c : chunks_) layers += (layers.empty() ? "" : ", ") + c->describe();
  const int ep = parallel_ ? parallel_->layout.ep() : 1;
  std::string experts;
  if (ep > 1) {
    const std::int64_t local = o_.moe.router.experts / ep, first = parallel_->layout.ep_rank() * local;
    experts = fmt::format(", expert parallel {} (experts {}–{} of {} here)", ep, first, first + local - 1,
                          o_.moe.router.experts);
  }
  return fmt::format("GPT: {} layers, hidden {}, {} heads ({} query groups), ffn {}, seq {}, vocab {} (padded {}){}, "
                     "tensor parallel {}{}{}, pipeline stage {} of {} ({})",
                     o_.num_layers, o_.hidden_size, o_.num_attention_heads,
                     o_.num_query_groups > 0 ? o_.num_query_groups : o_.num_attention_heads, o_.ffn_hidden_size,
                     o_.seq_length, o_.vocab_size, o_.padded_vocab_size, llama_style_description(o_), tp_size(tp_),
                     sequence_parallel_ && tp_size(tp_) > 1 ? " with sequence parallelism" : "", experts,
                     parallel_ ? parallel_->layout.pp_rank() : 0, parallel_ ? parallel_->layout.pp() : 1, layers);
}

}  // namespace tessera::gpt
