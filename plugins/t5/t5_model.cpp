#include "t5_model.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/backend.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/init.hpp"
#include "tessera/nn/tied_lm_head.hpp"
#include "tessera/ops.hpp"

namespace tessera::t5 {

namespace {

// The decoder's dropout sites start here (the encoder's at 0, as GPT's layers; the embedding
// dropout is site 0), so that no two dropouts of the model share a mask.
constexpr std::uint64_t kDecoderDropoutSites = std::uint64_t{1} << 48;

}  // namespace

TransformerBlockOptions t5_block_options(const T5Options& o, TpGroup tp, bool decoder) {
  // GPT's layers (pre-LayerNorm, GELU MLP, the output projections' init scaled by num_layers).
  TransformerBlockOptions b = transformer_block_options(o.t, std::move(tp), /*sequence_parallel=*/false, 0,
                                                     decoder ? o.decoder_num_layers : o.encoder_num_layers,
                                                     /*ends_model=*/true);
  if (decoder) {
    // Causal self-attention, then cross-attention on the encoder output (Megatron-LM's decoder layer:
    // LN → self-attention → + → LN → cross-attention → + → LN → MLP → +). Megatron-LM also masks padded
    // decoder keys; the decoder's padding is at the end of each row, so under causal masking a padded
    // key is only visible to padded queries, whose loss_mask is 0: causal masking alone gives the same
    // loss and gradients, and dec_padding_mask is not read.
    b.layer.spec.self_attention = AttentionKind::causal_self;
    b.layer.spec.cross_attention = true;
    b.layer.dropout_site_base = kDecoderDropoutSites;
    b.name = "decoder.layers";
    b.final_norm = "decoder.final_layernorm";
  } else {
    b.layer.spec.self_attention = AttentionKind::padded_self;  // every token sees every real token
    b.name = "encoder.layers";
    b.final_norm = "encoder.final_layernorm";
  }
  return b;
}

double t5_flops_per_iteration(const T5Options& o, std::int64_t sequences) {
  // Megatron-LM's accounting (forward + backward = 3 × forward, 2 flops per multiply-add) applied to
  // each stack: the encoder's layers over Se tokens, the decoder's over Sd with cross-attention
  // (its K/V projected from Se encoder tokens), the head over Sd.
  const double B = static_cast<double>(sequences), h = static_cast<double>(o.t.hidden_size);
  const double se = static_cast<double>(o.t.seq_length), sd = static_cast<double>(o.decoder_seq_length);
  const double ffn = static_cast<double>(o.t.ffn_hidden_size), f = 3.0;
  const auto self_layer = [&](double s) {
    return 2.0 * B * s * h * 3.0 * h /*q, kv*/ + 2.0 * B * s * h * h /*out*/ + 4.0 * B * s * h * ffn /*mlp*/ +
           4.0 * B * s * s * h /*attention*/;
  };
  const double cross = 2.0 * B * sd * h * h /*q*/ + 2.0 * B * se * h * 2.0 * h /*kv*/ + 2.0 * B * sd * h * h /*out*/ +
                       4.0 * B * sd * se * h /*attention*/;
  return f * (static_cast<double>(o.encoder_num_layers) * self_layer(se) +
              static_cast<double>(o.decoder_num_layers) * (self_layer(sd) + cross)) +
         6.0 * B * sd * h * static_cast<double>(o.t.padded_vocab_size);
}

T5Model::T5Model(const T5Options& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype)
    : o_(o),
      parallel_(std::move(parallel)),
      compute_dtype_(compute_dtype),
      tp_(tp_group(parallel_)),
      position_embeddings_("embedding.position_embeddings.weight", Shape{o.t.max_position_embeddings, o.t.hidden_size}),
      embedding_dropout_(o.t.hidden_dropout, 0),
      lm_bias_("lm_head.bias", Shape{o.t.padded_vocab_size / tp_size(tp_)}, /*decay=*/false) {
  if (parallel_ && (parallel_->layout.pp() > 1 || (parallel_->layout.sequence_parallel() && tp_size(tp_) > 1)))
    throw ConfigError("t5: pipeline and sequence parallelism are not supported (read_t5_options refuses them)");
  const TransformerOptions& t = o.t;
  word_embeddings_ = std::make_unique<VocabParallelEmbedding>("embedding.word_embeddings.weight", t.padded_vocab_size,
                                                              t.hidden_size, t.init_method_std, t.seed, tp_);
  word_embeddings_->weight().unpadded_rows = t.vocab_size;  // the padding depends on tp
  init_normal(position_embeddings_.value, t.init_method_std, t.seed, position_embeddings_.name);
  encoder_ = std::make_unique<TransformerBlock>(t5_block_options(o, tp_, false), t.seed);
  decoder_ = std::make_unique<TransformerBlock>(t5_block_options(o, tp_, true), t.seed);
  lm_bias_.tp_split_dim = 0;  // zero-initialised (Megatron-LM's T5LMHead)
  lm_bias_.unpadded_rows = t.vocab_size;
}

void T5Model::collect_parameters(std::vector<Parameter*>& out) {
  word_embeddings_->collect_parameters(out);
  out.push_back(&position_embeddings_);
  encoder_->collect_parameters(out);
  decoder_->collect_parameters(out);
  out.push_back(&lm_bias_);
}

FieldSpecs T5Model::batch_fields() const {
  // The t5_indexed data plugin also produces dec_padding_mask; causal masking makes it unneeded
  // (t5_block_options).
  const std::int64_t Se = o_.t.seq_length, Sd = o_.decoder_seq_length;
  return {{"enc_tokens", DType::i32, {Se}},     {"dec_tokens", DType::i32, {Sd}}, {"labels", DType::i32, {Sd}},
          {"loss_mask", DType::f32, {Sd}},      {"enc_padding_mask", DType::u8, {Se}}};
}

std::vector<TensorSpec> T5Model::stage_boundary(std::int64_t /*micro_batch_size*/, int boundary) const {
  throw Error(fmt::format("t5: no stage boundary {}: the model runs as one pipeline stage", boundary));
}

std::pair<Tensor, Tensor> T5Model::embed(StepContext& ctx, const Tensor& enc_tokens, const Tensor& dec_tokens) {
  TESSERA_CHECK_SHAPE(enc_tokens.dim() == 2 && enc_tokens.dtype() == DType::i32 && dec_tokens.dim() == 2 &&
                          dec_tokens.dtype() == DType::i32 && dec_tokens.size(0) == enc_tokens.size(0),
                      "T5 expects enc_tokens i32 [B,Te] and dec_tokens i32 [B,Td], got {} and {}", enc_tokens.str(),
                      dec_tokens.str());
  const std::int64_t B = enc_tokens.size(0), Te = enc_tokens.size(1), Td = dec_tokens.size(1), C = o_.t.hidden_size;
  const std::int64_t Ne = B * Te, Nd = B * Td;
  if (std::max(Te, Td) > o_.t.max_position_embeddings)
    throw ShapeError(fmt::format("T5 sequences of {} (encoder) and {} (decoder) tokens exceed max_position_embeddings {}",
                                 Te, Td, o_.t.max_position_embeddings));
  // One lookup for both: the encoder's rows, then the decoder's.
  Tensor ids = enc_tokens.new_empty({Ne + Nd}, DType::i32);
  Tensor ids_enc = ids.rows(0, Ne), ids_dec = ids.rows(Ne, Ne + Nd);
  ops::copy(enc_tokens.reshape({Ne}), ids_enc);
  ops::copy(dec_tokens.reshape({Nd}), ids_dec);
  Tensor x = word_embeddings_->forward(ctx, ids);
  Tensor pos = ids.new_empty({Ne + Nd}, DType::i32);
  Tensor pos_enc = pos.rows(0, Ne), pos_dec = pos.rows(Ne, Ne + Nd);
  ops::arange_mod(pos_enc, 0, Te);  // both count from 0 in the one table (Megatron-LM's t5_position_ids)
  ops::arange_mod(pos_dec, 0, Td);
  ops::embedding_forward(pos, position_embeddings_.weight(), x, /*accumulate=*/true);
  if (ctx.training) ctx.store().save(&position_embeddings_, SavedEmbedding{pos});
  Tensor y = embedding_dropout_.forward(ctx, x, 0);
  return {y.rows(0, Ne).reshape({B, Te, C}), y.rows(Ne, Ne + Nd).reshape({B, Td, C})};
}

void T5Model::embed_backward(StepContext& ctx, const Tensor& d_enc, const Tensor& d_dec) {
  Tensor pos = ctx.store().take<SavedEmbedding>(&position_embeddings_).positions;
  const std::int64_t Ne = d_enc.numel() / o_.t.hidden_size, Nd = d_dec.numel() / o_.t.hidden_size;
  Tensor dx = d_enc.new_empty({Ne + Nd, o_.t.hidden_size});
  Tensor dx_enc = dx.rows(0, Ne), dx_dec = dx.rows(Ne, Ne + Nd);
  ops::copy(d_enc.reshape({Ne, o_.t.hidden_size}), dx_enc);
  ops::copy(d_dec.reshape({Nd, o_.t.hidden_size}), dx_dec);
  dx = embedding_dropout_.backward(ctx, dx, 0);
  word_embeddings_->backward(ctx, dx);
  ops::embedding_backward(pos, dx, position_embeddings_.grad);
}

double T5Model::head_loss(StepContext& ctx, const Tensor& h, const Batch& batch) {
  const std::int64_t N = h.numel() / o_.t.hidden_size, C = o_.t.hidden_size;
  Tensor h2 = h.reshape({N, C});
  Tensor labels = batch.get("labels").reshape({N});
  Tensor mask = batch.get("loss_mask").reshape({N});
  const double mask_sum = ops::sum(mask);
  // A microbatch with nothing to learn from (all masked) contributes neither loss nor gradient.
  const float grad_scale = mask_sum > 0 ? static_cast<float>(ctx.loss_grad_scale / mask_sum) : 0.0f;
  TiedLmHead head;
  head.table = &word_embeddings_->weight().weight();
  head.table_grad = &word_embeddings_->weight().grad;
  head.first_id = word_embeddings_->first_id();
  head.bias = &lm_bias_.value;  // f32: the logits are f32
  head.bias_grad = &lm_bias_.grad;
  head.tp = tp_;
  head.ignored_targets = true;  // labels −1 on the padding
  head.chunk_elements = backend_of(h2.device()).chunk_elements_hint();
  TiedLmHeadOutput out = tied_lm_head_loss(head, h2, labels, mask, grad_scale, ctx.training);
  if (ctx.training) {
    copy_to_tp_backward(out.dh, tp_);  // each rank's dh covers its vocabulary columns: summed over tp
    ctx.store().save(this, SavedTensor{out.dh.reshape(h.shape())});
  }
  Tensor total = out.losses.new_empty({1}, DType::f64);
  ops::masked_sum(out.losses, mask, total);
  return mask_sum > 0 ? total.item() / mask_sum : 0.0;
}

StageOutput T5Model::forward_stage(StepContext& ctx, const Batch& batch, const std::vector<Tensor>& inputs, int c) {
  TESSERA_CHECK_SHAPE(c == 0 && inputs.empty(), "T5 runs as one pipeline stage (chunk 0, no inputs), got chunk {} "
                      "with {} input(s)", c, inputs.size());
  const Tensor& enc_tokens = batch.get("enc_tokens");
  const Tensor& dec_tokens = batch.get("dec_tokens");
  auto [x_enc, x_dec] = embed(ctx, enc_tokens, dec_tokens);
  AttentionInputs enc_in;
  enc_in.key_mask = batch.get("enc_padding_mask");  // u8 [B,Te]
  ctx.seq_length = enc_tokens.size(1);
  Tensor memory = encoder_->forward(ctx, x_enc, enc_in);
  AttentionInputs dec_in;
  dec_in.memory = memory;                           // the encoder output, after its final LayerNorm
  dec_in.memory_mask = enc_in.key_mask;             // cross-attention ignores the encoder's padding
  ctx.seq_length = dec_tokens.size(1);
  Tensor h = decoder_->forward(ctx, x_dec, dec_in);
  StageOutput out;
  out.loss = head_loss(ctx, h, batch);
  return out;
}

std::vector<Tensor> T5Model::backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int c) {
  TESSERA_CHECK_SHAPE(c == 0 && output_grads.empty(), "T5 runs as one pipeline stage (chunk 0, no output gradients), "
                      "got chunk {} with {} gradient(s)", c, output_grads.size());
  TransformerBlock::Grads dec = decoder_->backward(ctx, ctx.store().take<SavedTensor>(this).x);
  // dmemory: every decoder layer's cross-attention gradient w.r.t. the encoder output, summed over tp.
  TransformerBlock::Grads enc = encoder_->backward(ctx, dec.dmemory);
  embed_backward(ctx, enc.dx, dec.dx);
  return {};
}

double T5Model::flops_per_iteration(std::int64_t sequences) const { return t5_flops_per_iteration(o_, sequences); }

std::string T5Model::describe() const {
  const TransformerOptions& t = o_.t;
  return fmt::format("T5: encoder {} layers (seq {}), decoder {} layers (seq {}), hidden {}, {} heads, ffn {}, "
                     "vocab {} (padded {}), tensor parallel {}",
                     o_.encoder_num_layers, t.seq_length, o_.decoder_num_layers, o_.decoder_seq_length, t.hidden_size,
                     t.num_attention_heads, t.ffn_hidden_size, t.vocab_size, t.padded_vocab_size, tp_size(tp_));
}

}  // namespace tessera::t5
