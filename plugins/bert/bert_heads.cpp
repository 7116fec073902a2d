#include "bert_heads.hpp"

#include "tessera/nn/tied_lm_head.hpp"
#include "tessera/backend.hpp"
#include "tessera/ops.hpp"

namespace tessera::bert {

namespace {

LinearOptions square(const BertOptions& o) { return {o.t.hidden_size, o.t.hidden_size, true, o.t.init_method_std}; }

// Megatron-LM's BertLMHead applies torch.nn.functional.gelu — the exact (erf) form, where the MLP's
// fused bias-GELU is the tanh one — or with --openai-gelu the tanh form.
ops::GeluForm head_gelu(const BertOptions& o) { return o.t.openai_gelu ? ops::GeluForm::tanh : ops::GeluForm::erf; }

Tensor gelu(const Tensor& x, ops::GeluForm form) {
  Tensor y = x.new_empty(x.shape());
  ops::gelu_forward(x, y, form);
  return y;
}

Tensor tanh(const Tensor& x) {
  Tensor y = x.new_empty(x.shape());
  ops::tanh_forward(x, y);
  return y;
}


}  // namespace

BertModel::Heads::Heads(const BertOptions& o, const TpGroup& tp)
    : lm_dense("lm_head.dense", square(o), o.t.seed),
      lm_norm("lm_head.layernorm", o.t.hidden_size, o.t.layernorm_epsilon),
      lm_bias("lm_head.bias", Shape{o.t.padded_vocab_size / tp_size(tp)}, /*decay=*/false) {
  lm_bias.tp_split_dim = 0;
  lm_bias.unpadded_rows = o.t.vocab_size;
  lm_bias.forward_reads_value = true;
  if (o.binary_head) {
    pooler = std::make_unique<Linear>("pooler.dense", square(o), o.t.seed);
    binary = std::make_unique<Linear>("binary_head", LinearOptions{o.t.hidden_size, 2, true, o.t.init_method_std},
                                      o.t.seed);
  }
}

void BertModel::Heads::collect_parameters(std::vector<Parameter*>& out) {
  lm_dense.collect_parameters(out);
  lm_norm.collect_parameters(out);
  out.push_back(&lm_bias);
  if (pooler) {
    pooler->collect_parameters(out);
    binary->collect_parameters(out);
  }
}

BertModel::HeadLosses BertModel::head_losses(StepContext& ctx, const Tensor& h, const Batch& batch) {
  Heads& hd = *heads_;
  const Tensor& tokens = batch.get("tokens");
  const std::int64_t B = tokens.size(0), T = tokens.size(1), N = B * T, C = o_.t.hidden_size;
  // The heads need whole rows: under sequence parallelism gather every rank's rows first.
  const bool sp = sequence_parallel(ctx);
  Tensor h2 = sp ? gather_from_sequence_parallel_forward(h, tp_) : h.reshape({N, C});
  HeadLosses l;

  // Masked LM: transform, then the tied, vocab-parallel head with its bias; labels −1 are not predicted.
  Tensor t1 = hd.lm_dense.forward(ctx, h2);
  Tensor t2 = gelu(t1, head_gelu(o_));
  Tensor t3 = hd.lm_norm.forward(ctx, t2);
  Tensor labels = batch.get("labels").reshape({N});
  Tensor mask = batch.get("loss_mask").reshape({N});
  const double mask_sum = ops::sum(mask);
  TiedLmHead head;
  head.table = &word_embeddings_->weight().weight();
  head.table_grad = &word_embeddings_->weight().grad;
  head.first_id = word_embeddings_->first_id();
  head.bias = &hd.lm_bias.value;  // f32: the logits are f32 (Parameter::forward_reads_value)
  head.bias_grad = &hd.lm_bias.grad;
  head.tp = tp_;
  head.ignored_targets = true;
  head.chunk_elements = backend_of(h2.device()).chunk_elements_hint();
  const float lm_scale = mask_sum > 0 ? static_cast<float>(ctx.loss_grad_scale / mask_sum) : 0.0f;
  TiedLmHeadOutput lm = tied_lm_head_loss(head, t3, labels, mask, lm_scale, ctx.training);
  Tensor total = lm.losses.new_empty({1}, DType::f64);
  ops::masked_sum(lm.losses, mask, total);
  l.lm = mask_sum > 0 ? total.item() / mask_sum : 0.0;

  Tensor dh;
  if (ctx.training) {
    // Each rank's gradient covers its vocabulary columns: summed over tp before the replicated transform.
    copy_to_tp_backward(lm.dh, tp_);
    Tensor dt2 = hd.lm_norm.backward(ctx, lm.dh);
    ops::gelu_backward(dt2, t1, dt2, head_gelu(o_));
    dh = hd.lm_dense.backward(ctx, dt2);
  }

  if (hd.pooler) {
    // Sentence order: the pooler on each sequence's first ([CLS]) token, a 2-way head, mean over B.
    Tensor first = h2.new_empty({B, C});
    ops::copy_2d(h2, 0, T * C, first, 0, C, B, C);
    Tensor p2 = tanh(hd.pooler->forward(ctx, first));
    Tensor logits = ops::cast_to(hd.binary->forward(ctx, p2), DType::f32);
    Tensor order = batch.get("is_random").reshape({B});
    Tensor ones = Tensor::full({B}, 1.0f, logits.device());
    Tensor losses = logits.new_empty({B});
    ops::softmax_cross_entropy(logits, order, ones, losses, ctx.training,
                               static_cast<float>(ctx.loss_grad_scale / static_cast<double>(B)));
    l.sop = ops::sum(losses) / static_cast<double>(B);
    if (ctx.training) {  // logits now hold their gradient
      Tensor dp2 = hd.binary->backward(ctx, ops::cast_to(logits, p2.dtype()));
      ops::tanh_backward(dp2, p2, dp2);
      Tensor dfirst = hd.pooler->backward(ctx, dp2);
      // Into each sequence's first row only: B row adds, no [N, C] buffer.
      for (std::int64_t b = 0; b < B; ++b) {
        Tensor row = dh.rows(b * T, b * T + 1);
        ops::axpy(1.0f, dfirst.rows(b, b + 1), row);
      }
    }
  }
  if (ctx.training) {
    // dh is whole and equal on every tp rank; under sequence parallelism this rank keeps its rows.
    if (sp) {
      const SequenceShard rows = sequence_shard(N, tp_);
      dh = dh.rows(rows.first, rows.first + rows.rows);
    }
    ctx.store().save(this, SavedTensor{dh.reshape(h.shape())});
  }
  return l;
}

}  // namespace tessera::bert
