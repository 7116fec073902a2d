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

T5StageLayout t5_stage_layout(const T5Options& o, int stage, int pp, int split_rank) {
  T5StageLayout l;
  if (pp == 1) {
    l.encoder = {0, o.encoder_num_layers, true};
    l.decoder = {0, o.decoder_num_layers, true};
    l.embeds_encoder = l.embeds_decoder = l.head = true;
    return l;
  }
  if (split_rank < 1 || split_rank >= pp || stage < 0 || stage >= pp)
    throw Error(fmt::format("t5: stage {} of {} with split rank {}: read_t5_options should have refused it", stage, pp,
                            split_rank));
  if (stage < split_rank) {
    const std::int64_t per_stage = o.encoder_num_layers / split_rank;
    l.encoder = {stage * per_stage, per_stage, stage == split_rank - 1};
    l.embeds_encoder = stage == 0;
  } else {
    const std::int64_t per_stage = o.decoder_num_layers / (pp - split_rank);
    l.decoder = {(stage - split_rank) * per_stage, per_stage, stage == pp - 1};
    l.embeds_decoder = stage == split_rank;
    l.head = stage == pp - 1;
  }
  return l;
}

TransformerBlockOptions t5_block_options(const T5Options& o, TpGroup tp, bool decoder, const T5StackPart& part) {
  // GPT's layers (pre-LayerNorm, GELU MLP, the output projections' init scaled by num_layers).
  TransformerBlockOptions b = transformer_block_options(o.t, std::move(tp), /*sequence_parallel=*/false,
                                                        part.first_layer, part.count, part.ends_stack);
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
    if (part.ends_stack) b.final_norm = "decoder.final_layernorm";
  } else {
    b.layer.spec.self_attention = AttentionKind::padded_self;  // every token sees every real token
    b.name = "encoder.layers";
    if (part.ends_stack) b.final_norm = "encoder.final_layernorm";
  }
  return b;
}

std::vector<Shape> t5_boundary_shapes(const T5Options& o, int split_rank, std::int64_t micro_batch_size, int boundary) {
  const Shape encoder{micro_batch_size, o.t.seq_length, o.t.hidden_size};
  if (boundary < split_rank) return {encoder};
  return {Shape{micro_batch_size, o.decoder_seq_length, o.t.hidden_size}, encoder};
}

double t5_flops_per_iteration(const T5Options& o, std::int64_t sequences) {
  // Megatron-LM's accounting (forward + backward = 3 × forward, 2 flops per multiply-add) applied to
  // each stack: the encoder's layers over Se tokens, the decoder's over Sd with cross-attention
  // (its K/V projected from Se encoder tokens), the head over Sd. Attention is hq = heads·kv_channels
  // wide (= h unless kv_channels says otherwise).
  const double B = static_cast<double>(sequences), h = static_cast<double>(o.t.hidden_size);
  const double hq = static_cast<double>(o.t.num_attention_heads * o.t.kv_channels);
  const double se = static_cast<double>(o.t.seq_length), sd = static_cast<double>(o.decoder_seq_length);
  const double ffn = static_cast<double>(o.t.ffn_hidden_size), f = 3.0;
  const auto self_layer = [&](double s) {
    return 2.0 * B * s * h * 3.0 * hq /*q, kv*/ + 2.0 * B * s * hq * h /*out*/ + 4.0 * B * s * h * ffn /*mlp*/ +
           4.0 * B * s * s * hq /*attention*/;
  };
  const double cross = 2.0 * B * sd * h * hq /*q*/ + 2.0 * B * se * h * 2.0 * hq /*kv*/ +
                       2.0 * B * sd * hq * h /*out*/ + 4.0 * B * sd * se * hq /*attention*/;
  return f * (static_cast<double>(o.encoder_num_layers) * self_layer(se) +
              static_cast<double>(o.decoder_num_layers) * (self_layer(sd) + cross)) +
         6.0 * B * sd * h * static_cast<double>(o.t.padded_vocab_size);
}

T5Model::T5Model(const T5Options& o, std::shared_ptr<const Parallel> parallel, DType compute_dtype)
    : o_(o),
      parallel_(std::move(parallel)),
      compute_dtype_(compute_dtype),
      tp_(tp_group(parallel_)),
      stage_(parallel_ ? parallel_->layout.pp_rank() : 0),
      pp_(parallel_ ? parallel_->layout.pp() : 1),
      split_rank_(parallel_ ? parallel_->layout.pipeline_split_rank() : 0),
      embedding_dropout_(o.t.hidden_dropout, 0) {
  if (parallel_ && (parallel_->layout.vpp() > 1 || (parallel_->layout.sequence_parallel() && tp_size(tp_) > 1)))
    throw ConfigError("t5: the interleaved schedule and sequence parallelism are not supported (read_t5_options "
                      "refuses them)");
  layout_ = t5_stage_layout(o, stage_, pp_, split_rank_);
  const TransformerOptions& t = o.t;
  if (layout_.holds_embeddings()) {
    word_embeddings_ = std::make_unique<VocabParallelEmbedding>("embedding.word_embeddings.weight",
                                                                t.padded_vocab_size, t.hidden_size, t.init_method_std,
                                                                t.seed, tp_);
    word_embeddings_->weight().unpadded_rows = t.vocab_size;  // the padding depends on tp
    position_embeddings_ = std::make_unique<Parameter>("embedding.position_embeddings.weight",
                                                       Shape{t.max_position_embeddings, t.hidden_size});
    init_normal(position_embeddings_->value, t.init_method_std, t.seed, position_embeddings_->name);
    if (pp_ > 1) {  // stage 0 owns them; the split rank's and the last stage's are tied copies
      const auto tie = stage_ == 0 ? Parameter::StageTie::owner : Parameter::StageTie::copy;
      word_embeddings_->weight().stage_tie = tie;
      position_embeddings_->stage_tie = tie;
    }
  }
  if (layout_.encoder.count > 0)
    encoder_ = std::make_unique<TransformerBlock>(t5_block_options(o, tp_, false, layout_.encoder), t.seed);
  if (layout_.decoder.count > 0)
    decoder_ = std::make_unique<TransformerBlock>(t5_block_options(o, tp_, true, layout_.decoder), t.seed);
  if (layout_.head) {
    lm_bias_ = std::make_unique<Parameter>("lm_head.bias", Shape{t.padded_vocab_size / tp_size(tp_)}, /*decay=*/false);
    lm_bias_->tp_split_dim = 0;  // zero-initialised (Megatron-LM's T5LMHead)
    lm_bias_->unpadded_rows = t.vocab_size;
    lm_bias_->forward_reads_value = true;
  }
}

void T5Model::collect_parameters(std::vector<Parameter*>& out) {
  // The tied tables come in the same order on every stage of the embedding group (the trainer sums
  // their gradients over it parameter by parameter).
  if (word_embeddings_) {
    word_embeddings_->collect_parameters(out);
    out.push_back(position_embeddings_.get());
  }
  if (encoder_) encoder_->collect_parameters(out);
  if (decoder_) decoder_->collect_parameters(out);
  if (lm_bias_) out.push_back(lm_bias_.get());
}

FieldSpecs T5Model::batch_fields() const {
  // The t5_indexed data plugin also produces dec_padding_mask; causal masking makes it unneeded
  // (t5_block_options).
  const std::int64_t Se = o_.t.seq_length, Sd = o_.decoder_seq_length;
  return {{"enc_tokens", DType::i32, {Se}},     {"dec_tokens", DType::i32, {Sd}}, {"labels", DType::i32, {Sd}},
          {"loss_mask", DType::f32, {Sd}},      {"enc_padding_mask", DType::u8, {Se}}};
}

std::vector<TensorSpec> T5Model::stage_boundary(std::int64_t micro_batch_size, int boundary) const {
  if (boundary < 0 || boundary >= pp_ - 1)
    throw Error(fmt::format("t5: no stage boundary {} in a pipeline of {} stage(s)", boundary, pp_));
  std::vector<TensorSpec> specs;
  for (const Shape& s : t5_boundary_shapes(o_, split_rank_, micro_batch_size, boundary))
    specs.push_back({s, compute_dtype_});
  return specs;
}

const Tensor& T5Model::stage_input(const std::vector<Tensor>& inputs, std::size_t i,
                                   std::int64_t micro_batch_size) const {
  const std::vector<Shape> expected = t5_boundary_shapes(o_, split_rank_, micro_batch_size, stage_ - 1);
  TESSERA_CHECK_SHAPE(inputs.size() == expected.size() && i < inputs.size() && inputs[i].defined() &&
                          inputs[i].shape() == expected[i] && inputs[i].dtype() == compute_dtype_,
                      "T5 stage {} expects {} input(s) from stage {}, the {} one {}[{}]; got {} tensor(s)", stage_,
                      expected.size(), stage_ - 1, i, dtype_name(compute_dtype_), fmt::join(expected[i], ", "),
                      inputs.size());
  return inputs[i];
}

std::pair<Tensor, Tensor> T5Model::embed(StepContext& ctx, const Tensor* enc_tokens, const Tensor* dec_tokens) {
  for (const Tensor* t : {enc_tokens, dec_tokens})
    TESSERA_CHECK_SHAPE(!t || (t->dim() == 2 && t->dtype() == DType::i32),
                        "T5 expects enc_tokens i32 [B,Te] and dec_tokens i32 [B,Td], got {}", t->str());
  const Tensor& any = enc_tokens ? *enc_tokens : *dec_tokens;
  const std::int64_t B = any.size(0), C = o_.t.hidden_size;
  const std::int64_t Te = enc_tokens ? enc_tokens->size(1) : 0, Td = dec_tokens ? dec_tokens->size(1) : 0;
  TESSERA_CHECK_SHAPE(!enc_tokens || !dec_tokens || dec_tokens->size(0) == B,
                      "T5's enc_tokens and dec_tokens hold different batch sizes ({} and {})", B, dec_tokens->size(0));
  const std::int64_t Ne = B * Te, Nd = B * Td;
  if (std::max(Te, Td) > o_.t.max_position_embeddings)
    throw ShapeError(fmt::format("T5 sequences of {} (encoder) and {} (decoder) tokens exceed max_position_embeddings {}",
                                 Te, Td, o_.t.max_position_embeddings));
  // One lookup for both: the encoder's rows, then the decoder's.
  Tensor ids = any.new_empty({Ne + Nd}, DType::i32);
  Tensor pos = any.new_empty({Ne + Nd}, DType::i32);
  if (Ne > 0) {
    Tensor ids_enc = ids.rows(0, Ne);
    ops::copy(enc_tokens->reshape({Ne}), ids_enc);
    Tensor pos_enc = pos.rows(0, Ne);
    ops::arange_mod(pos_enc, 0, Te);  // both count from 0 in the one table (Megatron-LM's t5_position_ids)
  }
  if (Nd > 0) {
    Tensor ids_dec = ids.rows(Ne, Ne + Nd);
    ops::copy(dec_tokens->reshape({Nd}), ids_dec);
    Tensor pos_dec = pos.rows(Ne, Ne + Nd);
    ops::arange_mod(pos_dec, 0, Td);
  }
  Tensor x = word_embeddings_->forward(ctx, ids);
  ops::embedding_forward(pos, position_embeddings_->weight(), x, /*accumulate=*/true);
  // The dropout mask is one process's over [encoder rows; decoder rows]: the decoder's rows alone
  // (the split rank's stage) start past the encoder's B·Se rows.
  const TokenRows rows{enc_tokens ? 0 : B * o_.t.seq_length};
  if (ctx.training) ctx.store().save(position_embeddings_.get(), SavedEmbedding{pos, rows.first});
  Tensor y = embedding_dropout_.forward(ctx, x, rows);
  std::pair<Tensor, Tensor> out;
  if (Ne > 0) out.first = y.rows(0, Ne).reshape({B, Te, C});
  if (Nd > 0) out.second = y.rows(Ne, Ne + Nd).reshape({B, Td, C});
  return out;
}

void T5Model::embed_backward(StepContext& ctx, const Tensor& d_enc, const Tensor& d_dec) {
  SavedEmbedding saved = ctx.store().take<SavedEmbedding>(position_embeddings_.get());
  const std::int64_t C = o_.t.hidden_size;
  const std::int64_t Ne = d_enc.defined() ? d_enc.numel() / C : 0, Nd = d_dec.defined() ? d_dec.numel() / C : 0;
  Tensor dx;
  if (Ne > 0 && Nd > 0) {
    dx = d_enc.new_empty({Ne + Nd, C});
    Tensor dx_enc = dx.rows(0, Ne), dx_dec = dx.rows(Ne, Ne + Nd);
    ops::copy(d_enc.reshape({Ne, C}), dx_enc);
    ops::copy(d_dec.reshape({Nd, C}), dx_dec);
  } else {
    dx = (Ne > 0 ? d_enc : d_dec).reshape({Ne + Nd, C});
  }
  dx = embedding_dropout_.backward(ctx, dx, TokenRows{saved.dropout_first_row});
  word_embeddings_->backward(ctx, dx);
  ops::embedding_backward(saved.positions, dx, position_embeddings_->grad);
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
  head.bias = &lm_bias_->value;  // f32: the logits are f32 (Parameter::forward_reads_value)
  head.bias_grad = &lm_bias_->grad;
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
  TESSERA_CHECK_SHAPE(c == 0, "T5 has one model chunk per stage, got chunk {}", c);
  TESSERA_CHECK_SHAPE(stage_ > 0 || inputs.empty(), "T5's first stage takes no inputs, got {}", inputs.size());
  const Tensor& enc_tokens = batch.get("enc_tokens");
  const Tensor& dec_tokens = batch.get("dec_tokens");
  const std::int64_t B = enc_tokens.size(0);
  std::pair<Tensor, Tensor> embedded;
  if (layout_.embeds_encoder || layout_.embeds_decoder)
    embedded = embed(ctx, layout_.embeds_encoder ? &enc_tokens : nullptr, layout_.embeds_decoder ? &dec_tokens : nullptr);
  Tensor x_enc = embedded.first, x_dec = embedded.second;
  StageOutput out;
  Tensor memory;
  if (encoder_) {
    if (!layout_.embeds_encoder) x_enc = stage_input(inputs, 0, B);
    AttentionInputs enc_in;
    enc_in.key_mask = batch.get("enc_padding_mask");  // u8 [B,Te]
    ctx.seq_length = enc_tokens.size(1);
    memory = encoder_->forward(ctx, x_enc, enc_in);
    if (!decoder_) {
      out.activations = {memory};
      return out;
    }
  } else if (layout_.embeds_decoder) {
    memory = stage_input(inputs, 0, B);  // the encoder output, from the split rank's predecessor
  } else {
    x_dec = stage_input(inputs, 0, B);
    memory = stage_input(inputs, 1, B);
  }
  AttentionInputs dec_in;
  dec_in.memory = memory;                                 // the encoder output, after its final LayerNorm
  dec_in.memory_mask = batch.get("enc_padding_mask");     // cross-attention ignores the encoder's padding
  ctx.seq_length = dec_tokens.size(1);
  Tensor h = decoder_->forward(ctx, x_dec, dec_in);
  if (!layout_.head) {
    out.activations = {h, memory};  // the encoder output travels on, unchanged
    return out;
  }
  out.loss = head_loss(ctx, h, batch);
  return out;
}

std::vector<Tensor> T5Model::backward_stage(StepContext& ctx, const std::vector<Tensor>& output_grads, int c) {
  TESSERA_CHECK_SHAPE(c == 0, "T5 has one model chunk per stage, got chunk {}", c);
  const std::size_t expected = layout_.head ? 0 : (decoder_ ? 2 : 1);
  TESSERA_CHECK_SHAPE(output_grads.size() == expected, "T5 stage {} needs {} output gradient(s), got {}", stage_,
                      expected, output_grads.size());
  if (!decoder_) {  // an encoder stage before the split
    Tensor dx = encoder_->backward(ctx, output_grads[0]).dx;
    if (!layout_.embeds_encoder) return {dx};
    embed_backward(ctx, dx, Tensor());
    return {};
  }
  TransformerBlock::Grads dec = decoder_->backward(ctx, layout_.head ? ctx.store().take<SavedTensor>(this).x
                                                                     : output_grads[0]);
  // dmemory: this stage's decoder layers' cross-attention gradients w.r.t. the encoder output (summed
  // over tp), plus those of the stages after it.
  if (!layout_.head) ops::add(dec.dmemory, output_grads[1], dec.dmemory);
  if (encoder_) {  // one stage: the whole model
    TransformerBlock::Grads enc = encoder_->backward(ctx, dec.dmemory);
    embed_backward(ctx, enc.dx, dec.dx);
    return {};
  }
  if (layout_.embeds_decoder) {
    embed_backward(ctx, Tensor(), dec.dx);
    return {dec.dmemory};
  }
  return {dec.dx, dec.dmemory};
}

double T5Model::flops_per_iteration(std::int64_t sequences) const { return t5_flops_per_iteration(o_, sequences); }

std::string T5Model::describe() const {
  const TransformerOptions& t = o_.t;
  std::string stage;
  if (pp_ > 1) {
    const TransformerBlock& block = encoder_ ? *encoder_ : *decoder_;
    stage = fmt::format(", pipeline stage {} of {} (split rank {}): {} {}", stage_, pp_, split_rank_,
                        encoder_ ? "encoder" : "decoder", block.describe());
  }
  return fmt::format("T5: encoder {} layers (seq {}), decoder {} layers (seq {}), hidden {}, {} heads, ffn {}, "
                     "vocab {} (padded {}), tensor parallel {}{}",
                     o_.encoder_num_layers, t.seq_length, o_.decoder_num_layers, o_.decoder_seq_length, t.hidden_size,
                     t.num_attention_heads, t.ffn_hidden_size, t.vocab_size, t.padded_vocab_size, tp_size(tp_), stage);
}

}  // namespace tessera::t5
