// The ops modules are written in. Each op is declared here once, checks its arguments here and runs
// on the backend of its tensors' device (backend.hpp: the CPU's wraps kernels/cpu; others are
// plugins). All tensors of one call must be on one device. Shapes use the llm.c
// letters: N rows (= B·T), C channels, B batch, T time, Hq query heads, Hkv key/value heads
// (query groups), D head size, V vocabulary.
//
// Conventions (as llm.c): outputs named `out`/`dx` are overwritten; parameter gradients (`dw`,
// `db`, `dtable`) are accumulated with +=, so microbatches add up without extra passes. Tensors are
// contiguous; ids are i32.
//
// Dtypes (mixed precision, tessera/half.hpp): an op's float tensors share one compute dtype — f32,
// bf16 or f16 — with these exceptions, which are always f32: accumulated parameter gradients (`dw`,
// `db`, `dtable`: f32, or the compute dtype itself), LayerNorm's mean/rstd, attention's lse,
// everything of the losses (logits included) and of Adam, masked_sum and count_zeros. matmul's out
// may be f32 for bf16/f16 inputs (f32 accumulation, no rounding: logits, weight gradients). A
// backend runs an op in a 16-bit dtype only if Backend::supports(op, dtype) says so (else a
// ShapeError naming both); the CPU's run bf16 GEMMs through oneDNN where the CPU has bf16
// instructions and every other op in f32 on converted copies.
#pragma once
#include <cstdint>
#include <utility>

#include "tessera/gated_linear_unit.hpp"
#include "tessera/rope_frequency.hpp"
#include "tessera/tensor.hpp"

namespace tessera::ops {

// Threads used by the kernels of this process (OpenMP and the BLAS). Decided once, at start:
// cores / ranks on the node. See docs/architecture.md "Who owns the cores".
void set_num_threads(int n);
int num_threads();
// TESSERA_OP_PROFILE=1 (a per-op time table at exit, docs/benchmarks.md): forget what was measured so
// far, e.g. after warm-up steps.
void reset_op_profile();

// ---- matmul ---------------------------------------------------------------------------------
// out[M,N] = alpha · op(a) · op(b) + beta · out, op(x) = x or xᵀ. a is [M,K] ([K,M] if trans_a),
// b is [K,N] ([N,K] if trans_b). Leading dims of a and out may be flattened views.
void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& out,
            float alpha = 1.0f, float beta = 0.0f);

// Linear layer, weight in PyTorch layout: y[N,out] = x[N,in] · w[out,in]ᵀ (+ bias[out]).
// x and y may have any leading dims (flattened to N).
void linear_forward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
// dx[N,in] = dy · w (overwritten; skipped when dx is null), dw += dyᵀ · x, db += Σ_rows dy.
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db);

// ---- normalisation --------------------------------------------------------------------------
// y = (x − mean)·rstd·w + b over the last dim C; x, y [N,C]; mean, rstd [N] are saved for backward.
void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y,
                        Tensor& mean, Tensor& rstd);
// dx overwritten; dw, db accumulated.
void layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& mean,
                         const Tensor& rstd, Tensor& dx, Tensor& dw, Tensor& db);

// ---- activations ----------------------------------------------------------------------------
// GELU. GeluForm::tanh, the tanh approximation (GPT-2; Megatron-LM's MLP with its fused bias-GELU):
// 0.5x(1+tanh(√(2/π)(x+0.044715x³))). GeluForm::erf, the exact x·Φ(x) = 0.5x(1+erf(x/√2))
// (torch.nn.functional.gelu: Megatron-LM's BERT LM head).
enum class GeluForm { tanh, erf };
void gelu_forward(const Tensor& x, Tensor& y, GeluForm form = GeluForm::tanh);
void gelu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, GeluForm form = GeluForm::tanh);
// Squared ReLU (Megatron-LM's --squared-relu): y = max(x, 0)²; backward dx = dy·2·max(x, 0)
// (dx may alias dy).
void squared_relu_forward(const Tensor& x, Tensor& y);
void squared_relu_backward(const Tensor& dy, const Tensor& x, Tensor& dx);
// y = tanh(x) (BERT's pooler). Backward takes the OUTPUT y, which the module saves: dx = dy·(1 − y²)
// (overwritten; dx may alias dy).
void tanh_forward(const Tensor& x, Tensor& y);
void tanh_backward(const Tensor& dy, const Tensor& y, Tensor& dx);
// y = 1/(1 + e^{−x}) (the shared expert's gate). Backward from the OUTPUT y: dx = dy·y·(1 − y)
// (overwritten; dx may alias dy).
void sigmoid_forward(const Tensor& x, Tensor& y);
void sigmoid_backward(const Tensor& dy, const Tensor& y, Tensor& dx);

// ---- Llama-style blocks (docs/llama.md) -----------------------------------------------------
// RMSNorm over the last dim C (Llama, Megatron-Core's normalization = "RMSNorm"), in f32 whatever
// the dtype: y = w · x·rstd, rstd = 1/√(mean(x²) + eps); x, y [N,C], w [C], rstd f32 [N] saved for
// backward.
void rms_norm_forward(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& rstd);
// dx = rstd·(g − x·rstd²·mean(g·x)), g = dy·w (overwritten); dw += Σ_rows dy·x·rstd.
void rms_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, Tensor& dx,
                       Tensor& dw);
// SwiGLU in Megatron-Core's order: each row of x [N, 2F] is [x0 | x1] (fc1's two halves),
// y [N,F] = silu(x0)·x1, silu(a) = a·σ(a). Backward: dx [N,2F] overwritten,
// dx0 = dy·x1·σ(x0)·(1 + x0·(1 − σ(x0))), dx1 = dy·silu(x0).
// `g` makes it any of Megatron-Core's gated linear units: the gate's σ(α·a) (quick GeGLU: α = 1.702),
// both halves clamped, an offset on the linear half (tessera/gated_linear_unit.hpp).
void swiglu_forward(const Tensor& x, Tensor& y, const GatedLinearUnit& g = {});
void swiglu_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const GatedLinearUnit& g = {});
// Rotary position embedding (RoPE, Megatron-Core's rotary_pos_emb), in place on the head layout
// attention uses: x [B,T,W] holds per token row H heads of D channels at columns [h·D, (h+1)·D)
// (W ≥ H·D: the query [B,T,Hq·D], or the keys at the start of the fused kv [B,T,2·Hkv·D]; columns
// past H·D are untouched). The first rotary_dim (even, ≤ D) channels of each head are rotated by the
// angles (position_offset + t)·inv_freq_i, inv_freq_i = base^(−2i/rotary_dim), i < rotary_dim/2
// (scaled as Llama 3.1's with scaling_factor > 0: tessera/rope_frequency.hpp);
// the rest pass through. Non-interleaved (rotate_half): channel i pairs with i + rotary_dim/2;
// interleaved: 2i with 2i + 1. Angles and their cos/sin in double, applied in f32.
struct RopeShape {
  std::int64_t B = 0, T = 0, H = 0, D = 0, row_width = 0, rotary_dim = 0;
  double base = 10000.0;
  bool interleaved = false;
  std::int64_t position_offset = 0;
  // > 0: Llama 3.1's frequency scaling by this factor (tessera/rope_frequency.hpp; Megatron's
  // --use-rope-scaling --rope-scaling-factor).
  double scaling_factor = 0.0;
  // Positions divided by this factor before rotating (Megatron-Core's
  // --rotary-seq-len-interpolation-factor, Hugging Face's "linear" rope_scaling); 1: none.
  double interpolation = 1.0;
  // YaRN's frequencies and cos/sin magnitude (tessera/rope_frequency.hpp; factor 0: off; not with
  // scaling_factor). The inverse rotation scales by the same magnitude: it is the transpose.
  RopeYarn yarn{};
};
void rope_forward(const RopeShape& s, Tensor& x);
// The transpose (rotation by −angle): x's gradient from the rotated tensor's, in place.
void rope_backward(const RopeShape& s, Tensor& dx);

// Dropout without a stored mask: element i is kept iff hash(seed, offset + i) ≥ p, scaled by
// 1/(1−p). The same seed and offset in backward reproduce the mask. p = 0 copies. offset: where x
// starts in the tensor whose mask it shares (a sequence-parallel shard: its first row × C).
void dropout_forward(const Tensor& x, float p, std::uint64_t seed, Tensor& y, std::int64_t offset = 0);
void dropout_backward(const Tensor& dy, float p, std::uint64_t seed, Tensor& dx, std::int64_t offset = 0);

// ---- attention ------------------------------------------------------------------------------
// What restricts the keys beyond causality, each part optional (undefined = no restriction):
//   key_mask  [B,Tk] u8   nonzero = attend (padding mask)
//   first_key [B,Tq] i32  query i of batch row b attends only keys j ≥ first_key[b,i] (GPT's
//                         documents under reset_attention_mask: the first token of i's document;
//                         a value ≤ 0 restricts nothing, one past the keys leaves the row none)
// and what every query also attends:
//   sink      [Hq] f32      an attention sink (Megatron-Core's softmax_offset): a logit σ_h beside
//                           each row's scaled scores in head h's softmax, whose value is zero —
//                           p_j = exp(s_j)/(exp(σ_h) + Σ_k exp(s_k)); lse includes it
// and where the queries sit among the keys (causal only):
//   query_position [Tq] i32  query i stands at key position query_position[i] ∈ [0, Tk) of every
//                           batch row: it attends keys j ≤ query_position[i], its sliding window
//                           counts back from there, and its dropout counters are those of row
//                           query_position[i] of the whole [Tk, Tk] attention. Context parallelism's
//                           queries are a few chunks of the sequence against all its keys (Tq < Tk).
//                           Undefined: query i at position i (Tq = Tk).
struct AttentionMask {
  AttentionMask(Tensor key_mask = {}, Tensor first_key = {}, Tensor sink = {},  // NOLINT: implicit from a key mask
                Tensor query_position = {})
      : key_mask(std::move(key_mask)),
        first_key(std::move(first_key)),
        sink(std::move(sink)),
        query_position(std::move(query_position)) {}
  Tensor key_mask, first_key, sink, query_position;
};

// Scaled dot-product attention, one code path for MHA (Hkv = Hq), GQA and MQA (Hkv = 1): query
// head h uses key/value head h / (Hq/Hkv). Self-attention has Tq = Tk and q, kv from the same
// tokens; cross-attention takes kv from another sequence (Tq ≠ Tk allowed when not causal).
//   q        [B,Tq,Hq·D]          (as a column-parallel query projection produces it)
//   kv       [B,Tk,2·Hkv·D]       keys for all groups, then values for all groups
//   mask     AttentionMask        which keys each query attends (above); a Tensor converts to
//                                 one with that key_mask
//   out      [B,Tq,Hq·D]
//   lse      [B,Hq,Tq]            log Σ_j exp(q·k_jᵀ/√D) over the attended keys, saved for
//                                 backward; −∞ for a row that attends no key (its out is 0)
// causal: query t attends keys j ≤ t (needs Tq = Tk, unless the mask places the queries). The kernel is flash-style: keys in tiles,
// an online softmax, and backward recomputes the probabilities from lse, so what backward needs
// is q, kv, out and lse — never a [Tq,Tk] matrix.
// Dropout on the probabilities (Megatron-LM's attention_dropout; 0 = off): probability p_ij of
// query i and key j in head h of batch row b is kept iff dropout_mask.hpp's hash of (dropout_seed,
// ((b·heads_total + head_offset + h)·Tq + i)·Tk + j) passes, and scaled by 1/(1−p); backward draws
// the same mask again, so nothing more is saved. head_offset, heads_total: a tensor-parallel rank's
// first head and the layer's heads (0: Hq), so that every layout draws the same masks.
// window_left ≥ 0 (causal only): a sliding window, query t attends keys t − window_left … t
// (Megatron-Core's window_size [window_left, 0]); it combines with first_key, each query taking the
// later of the two first keys. −1: no window.
struct AttentionShape {
  std::int64_t B, Tq, Tk, Hq, Hkv, D;
  bool causal = true;
  float dropout = 0.0f;
  std::uint64_t dropout_seed = 0;
  std::int64_t head_offset = 0, heads_total = 0;
  std::int64_t window_left = -1;
};
void attention_forward(const AttentionShape& s, const Tensor& q, const Tensor& kv, const AttentionMask& mask,
                       Tensor& out, Tensor& lse);
// dq, dkv overwritten; out and lse as forward wrote them. A row attending no key gets dq = 0, and
// masked keys get dkv = 0.
void attention_backward(const AttentionShape& s, const Tensor& dout, const Tensor& q, const Tensor& kv,
                        const AttentionMask& mask, const Tensor& out, const Tensor& lse, Tensor& dq, Tensor& dkv);
// The sink's gradient, added into dsink [Hq] f32: dσ_h = −Σ_{b,t} exp(σ_h − lse[b,h,t]) · δ[b,h,t]
// with δ = Σ_d dout[b,t,h,d]·out[b,t,h,d] (the sink's probability times the softmax backward's
// row sum; dropout on the probabilities does not change it). attention_backward needs nothing more:
// lse already holds the sink.
void attention_sink_backward(const AttentionShape& s, const Tensor& dout, const Tensor& out, const Tensor& lse,
                             const Tensor& sink, Tensor& dsink);

// ---- embedding ------------------------------------------------------------------------------
// out[N,C] = table[ids[N]] (ids i32 in [0, rows)); with `accumulate`, out += instead of =.
void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, bool accumulate = false);
// dtable[ids[i]] += dout[i].
void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable);
// Vocab-parallel embedding: `table` holds rows [first_id, first_id + rows) of the full table. Ids
// outside that range give a zero row (the tensor-parallel all-reduce adds the owner's row) and
// are skipped by backward. Ids must be ≥ 0.
void embedding_shard_forward(const Tensor& ids, const Tensor& table, std::int64_t first_id, Tensor& out);
void embedding_shard_backward(const Tensor& ids, const Tensor& dout, std::int64_t first_id, Tensor& dtable);

// ---- loss -----------------------------------------------------------------------------------
// Fused softmax cross-entropy on a block of logits [N,V] (one chunk of rows at a time, so the
// full probability matrix never exists twice). For each row n:
//   losses[n] = logsumexp(logits[n]) − logits[n, targets[n]]
// and, when `grad_scale` is not null-op (compute_grad), logits is overwritten in place with
//   grad_scale · mask[n] · (softmax(logits[n]) − onehot(targets[n])).
// mask may be undefined (all ones). targets i32 [N]; losses f32 [N].
void softmax_cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& mask,
                           Tensor& losses, bool compute_grad, float grad_scale);

// The same loss with the vocabulary split across ranks (no rank holds whole rows of logits), in
// two passes around the tensor-parallel reduction of per-row statistics. logits [N,V] is this
// rank's shard, vocabulary ids [first_id, first_id + V); targets i32 [N] (≥ 0, possibly outside
// the shard); row_max, sum_exp, target_logit f32 [N].
// Pass 1: row_max = max_j logits, sum_exp = Σ_j exp(logits − row_max), target_logit = the
// target's logit if in the shard, else 0 (a target outside every shard, as Megatron's −1 for a
// token not predicted, is allowed: it must have mask 0). With keep_exp, logits becomes exp(logits − row_max).
void cross_entropy_shard_stats(Tensor& logits, const Tensor& targets, std::int64_t first_id,
                               Tensor& row_max, Tensor& sum_exp, Tensor& target_logit, bool keep_exp);
// Pass 2 on pass 1's kept exp, given the global max M and the global Σ exp(logits − M) of every
// row: exp_logits becomes grad_scale·mask·(softmax − onehot) restricted to the shard. The loss of
// row n is M + log(S) − (Σ over shards of target_logit).
void cross_entropy_shard_grad(Tensor& exp_logits, const Tensor& targets, std::int64_t first_id,
                              const Tensor& mask, const Tensor& row_max, const Tensor& global_max,
                              const Tensor& global_sum, float grad_scale);
// Between the passes, after the max all-reduce: sum_at_global = sum_exp·exp(row_max − global_max),
// this shard's part of the global Σ exp(logits − M). All f32 [N].
void cross_entropy_shard_rescale(const Tensor& row_max, const Tensor& sum_exp, const Tensor& global_max,
                                 Tensor& sum_at_global);
// After the sum all-reduce: losses = global_max + log(global_sum) − target_logit (summed over shards).
void cross_entropy_shard_loss(const Tensor& global_max, const Tensor& global_sum, const Tensor& target_logit,
                              Tensor& losses);

// Row-wise softmax over the last dim (sampling), out may alias x.
void softmax(const Tensor& x, Tensor& out);

// ---- elementwise and reductions -------------------------------------------------------------
void add(const Tensor& a, const Tensor& b, Tensor& out);  // out may alias a or b
void axpy(float alpha, const Tensor& x, Tensor& y);        // y += alpha·x
void add_bias(Tensor& y, const Tensor& bias);              // y[N,C] += bias[C] on every row
void scale(Tensor& x, float s);                            // x *= s
// Row-wise, for mixture-of-experts routing: x, out [N, C] of one float dtype (out may alias x), w and
// out of row_dot f32 [N]. scale_rows: out[n,:] = w[n]·x[n,:]; row_dot: out[n] = Σ_c a[n,c]·b[n,c].
void scale_rows(const Tensor& x, const Tensor& w, Tensor& out);
void row_dot(const Tensor& a, const Tensor& b, Tensor& out);
// Any dtype, both the same. The one op whose tensors may be on two devices: a host↔device copy.
void copy(const Tensor& src, Tensor& dst);
// dst = src converted between float dtypes (f32, bf16, f16; to 16 bits: round to nearest even), same
// element count. cast_to: src in `dtype`, src itself when it already is, else a new tensor beside it.
void cast(const Tensor& src, Tensor& dst);
Tensor cast_to(const Tensor& src, DType dtype);
// Strided block copy of rows × cols elements (any dtype, both the same; offsets and strides in
// elements of the flattened tensors): dst[dst_offset + r·dst_stride + c] = src[src_offset + r·src_stride + c].
// Interleaves all-gathered shards, slices columns, packs buffers — without host loops.
void copy_2d(const Tensor& src, std::int64_t src_offset, std::int64_t src_stride, Tensor& dst,
             std::int64_t dst_offset, std::int64_t dst_stride, std::int64_t rows, std::int64_t cols);
// out i32: out[i] = (start + i) mod period (position ids).
void arange_mod(Tensor& out, std::int64_t start, std::int64_t period);

// Reductions into an f64 [1] tensor on the same device (with `accumulate`, out += instead of =):
// they stay on the device until one read per iteration. Accumulated in double.
void sum(const Tensor& x, Tensor& out, bool accumulate = false);
void sum_squares(const Tensor& x, Tensor& out, bool accumulate = false);
// Σ values·mask over f32 tensors of equal size, in index order.
void masked_sum(const Tensor& values, const Tensor& mask, Tensor& out, bool accumulate = false);
// How many elements of an f32 tensor equal zero (±0), as a double (Megatron-LM's count_zeros_fp32,
// for [logging] log_num_zeros_in_grad).
void count_zeros(const Tensor& x, Tensor& out, bool accumulate = false);
// The same, read back to the host (one synchronisation on a device).
double sum(const Tensor& x);
double sum_squares(const Tensor& x);

// ---- optimizer ------------------------------------------------------------------------------
// One fused pass of Adam over a parameter (torch.optim.Adam / AdamW semantics):
//   g = grad·grad_scale (+ weight_decay·param unless decoupled)
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//   param −= lr·(m/(1−β1^step)) / (√(v/(1−β2^step)) + eps)
//   decoupled (AdamW): param *= 1 − lr·weight_decay first.
struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float grad_scale = 1.0f;  // e.g. the gradient-clipping coefficient, fused into the pass
  std::int64_t step = 1;    // 1-based, for bias correction
  bool decoupled = true;
};
// param_copy (mixed precision): param's bf16 or f16 compute copy, written from the updated value in
// the same pass.
void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamParams& p,
               Tensor* param_copy = nullptr);

}  // namespace tessera::ops
