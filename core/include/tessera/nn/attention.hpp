// Attention with num_query_groups: MHA (groups = heads), GQA and MQA (groups = 1) are one code
// path, of three kinds (AttentionKind):
//   causal_self   x attends to itself, each token to itself and earlier tokens (GPT);
//   padded_self   x attends to itself, every token to every key the padding mask keeps (BERT, T5's
//                 encoder): key_mask u8 [B,T], nonzero = a real token;
//   cross         x attends to a second sequence, the memory [B,Tk,C] (T5's decoder attending to
//                 the encoder's output), with the memory's padding mask u8 [B,Tk] if given.
// Query and key/value projections are separate linears (as BigCode's MQA has them, so that tensor
// parallelism can split Q by heads while replicating a single K/V head); for cross-attention K/V
// are projected from the memory.
//   x [B,T,C] → q [B,T,Hq·D], kv [B,Tk,2·Hkv·D] → attention → [B,T,Hq·D] → output → [B,T,C]
//
// Tensor parallelism splits the heads: rank r computes heads [r·Hq/tp, (r+1)·Hq/tp).
// - query: column-parallel (its heads' rows).
// - key_value, groups ≥ tp: column-parallel by groups; the weight is [K of all groups | V of all
//   groups], so a rank's shard is two row ranges, [K_r | V_r] (blocks = 2).
// - key_value, groups < tp (MQA, groups = 1): a replicated Linear on every rank (BigCode's MQA); each
//   rank's gradient covers only its heads, so its parameters set reduce_grad_over_tp.
// - output: row-parallel (all-reduce of the partial sums; bias added once).
// Self-attention: the input gradients of query and key_value are summed locally and all-reduced
// once (copy_to_tp). Cross-attention: x's gradient is all-reduced here; the memory's partial
// gradient is added into the caller's buffer unreduced (TransformerBlock sums all its layers'
// contributions and all-reduces once).
//
// sequence_parallel (tp > 1, self-attention only; tensor_parallel_region.hpp): x is this rank's
// token rows [B·T/tp, C]. They are all-gathered once for all projections and seen as [B,T,C] with
// T = ctx.seq_length; the output projection reduce-scatters back to [B·T/tp, C], and the summed
// input gradient is reduce-scattered instead of all-reduced. The projections keep the gathered
// input (one [B·T, C] tensor, shared by Q and K/V) rather than only the shard: Q and K/V are
// separate linears here, and re-gathering for each in backward would double that communication.
//
// qk_norm (Megatron-Core's qk_layernorm) normalises each head of q and of the keys before rotary
// positions.
// Llama-style options (docs/llama.md): bias = false drops the output projection's bias and
// qkv_bias = false the query's and key/value's (add_bias_linear = false; add_qkv_bias keeps the
// latter, as Qwen2's); rotary.dim > 0 applies rotary position embeddings (ops::rope_forward)
// to q and to the keys of kv right after the projections, on the first rotary.dim channels of each
// head, at positions 0…T−1 of each sequence (self-attention only). What attention saves is the
// rotated q and kv, so backward rotates dq and the keys' gradient back (ops::rope_backward).
//
// Context parallelism (StepContext::context_parallel, nn/context_parallel.hpp; causal
// self-attention): x holds the rank's chunks of each sequence; q and kv are projected and rotated
// at the tokens' positions, kv is all-gathered over cp into the whole sequences and the op attends
// the rank's queries, placed at their positions, to every key. Only the rank's kv is saved: backward
// gathers it again, and reduce-scatters the whole keys' and values' gradient back to their ranks.
//
// Generation with a key/value cache (ctx.kv_cache, nn/kv_cache.hpp; causal self-attention,
// inference only): the prefill forward runs as usual and also copies its rotated keys and values
// into the layer's cache buffer; a step ([B,1] tokens) rotates each row's q and k at that row's
// position, writes k/v to that row's next slot and attends (ops::attention_forward, not causal)
// over the cached keys with a key mask hiding slots past each row's length. Only existing ops, so
// the path runs on any backend.
#pragma once
#include <optional>

#include "tessera/nn/column_parallel_linear.hpp"
#include "tessera/nn/context_parallel.hpp"
#include "tessera/nn/norm_spec.hpp"
#include "tessera/nn/row_parallel_linear.hpp"
#include "tessera/ops.hpp"

namespace tessera {

enum class AttentionKind { causal_self, padded_self, cross };
const char* attention_kind_name(AttentionKind k);

struct AttentionOptions {
  std::int64_t hidden = 0, heads = 0, query_groups = 0;  // query_groups 0 → heads (MHA)
  float init_std = 0.02f, output_init_std = 0.02f;
  TpGroup tp;  // null: one process
  // Megatron-LM's sequence parallelism (no effect with one tp rank); whole layers use it together.
  bool sequence_parallel = false;
  // Selective activation recompute (Megatron-LM's "selective"): forward does not keep the attention
  // op's own state (the log-sum-exp [B,H/tp,T]; the flash kernel never holds probabilities);
  // backward reruns the op on the saved q and kv (same op, same inputs: bit-identical gradients).
  bool recompute_core = false;
  // false: the projections do not keep x (the norm's output); backward takes it from the caller,
  // which recomputes it (recompute_modules "layernorm"). Under sequence parallelism backward gathers
  // its rows again (Megatron-LM's linears re-gather their saved shard the same way).
  bool keep_input = true;
  AttentionKind kind = AttentionKind::causal_self;
  bool bias = true;      // the output projection's bias (Megatron's add_bias_linear)
  bool qkv_bias = true;  // the query and key/value projections' (add_bias_linear or add_qkv_bias)
  // Dropout on the attention probabilities in training steps (Megatron-LM's attention_dropout), its
  // masks drawn from StepContext::dropout_seed(dropout_site) (ops::AttentionShape).
  float dropout = 0.0f;
  std::uint64_t dropout_site = 0;
  // Rotary position embedding (Megatron-Core's rotary_pos_emb): dim 0 = none; else the rotated
  // channels per head (even, ≤ head size: int(kv_channels·rotary_percent)).
  struct Rotary {
    std::int64_t dim = 0;
    double base = 10000.0;
    bool interleaved = false;
    double scaling_factor = 0.0;  // > 0: Llama 3.1's frequency scaling (use_rope_scaling)
    double interpolation = 1.0;   // positions divided by it (rotary_seq_len_interpolation_factor)
    RopeYarn yarn{};              // factor > 0: YaRN (position_embedding_type = "yarn")
  } rotary{};
  // Channels of each head (Megatron-LM's kv_channels): 0 → hidden / heads. Otherwise the query and
  // output projections are hidden ↔ heads·kv_channels wide, which need not be hidden.
  std::int64_t kv_channels = 0;
  // Causal self-attention over a sliding window: query i attends keys i − window_left … i
  // (Megatron-Core's window_size [window_left, 0]); −1: every earlier key. The op's window
  // (AttentionShape::window_left) in training and prefill, combined with documents' first keys; a
  // first_key mask in cached steps, where each row's query sits at its own position.
  std::int64_t window_left = -1;
  // Megatron-Core's softmax_type: "vanilla" softmax; "off-by-one", a zero logit beside every row's
  // scores (exp(s_j)/(1 + Σ exp(s_k))); "learnable", a trained logit per head there — an attention
  // sink ("softmax_offset" [heads], normal(0, init_std) as Megatron-Core's init_method, tp-split
  // with the heads, no weight decay). Self-attention only (ops::AttentionMask::sink).
  enum class SoftmaxType { vanilla, off_by_one, learnable };
  SoftmaxType softmax_type = SoftmaxType::vanilla;
  // Megatron-Core's qk_layernorm: this norm (the layers' LayerNorm or RMSNorm, epsilon qk_norm_eps)
  // over each head's channels of q and of the keys, one weight of head size shared by the heads
  // ("q_layernorm", "k_layernorm"), after the projections and before rotary positions. Each tp rank
  // sees its heads only, so the norms' gradients are summed over tp. Unset: none.
  std::optional<NormSpec> qk_norm = std::nullopt;
  float qk_norm_eps = 1e-5f;
};

// Megatron-Core's spelling of a softmax type ("vanilla", "off-by-one", "learnable"), the
// [model] softmax_type value.
const char* softmax_type_name(AttentionOptions::SoftmaxType t);

// What attention reads besides x: each kind checks the fields it uses at each call and ignores the
// others (a decoder layer hands the same inputs to its self- and cross-attention).
struct AttentionInputs {
  Tensor key_mask;     // padded_self: u8 [B,T]
  Tensor memory;       // cross: [B,Tk,C]
  Tensor memory_mask;  // cross, optional: u8 [B,Tk]
  // Self-attention, optional: i32 [B,T], the first key each query attends (ops::AttentionMask;
  // GPT's document starts under data.reset_attention_mask).
  Tensor first_key;
};

class Attention : public Module {
 public:
  Attention(const std::string& name, const AttentionOptions& o, std::uint64_t seed);
  void collect_parameters(std::vector<Parameter*>& out) override;
  // x [B,T,C] → [B,T,C]; sequence parallel: x [B·T/tp, C] → [B·T/tp, C] (needs ctx.seq_length).
  Tensor forward(StepContext& ctx, const Tensor& x, const AttentionInputs& in);
  // The same `in` as forward. Cross-attention adds this rank's partial memory gradient into
  // *dmemory ([B,Tk,C], zeroed by the caller; not reduced over tp). x: forward's input again when
  // built without keep_input (undefined otherwise).
  Tensor backward(StepContext& ctx, const Tensor& dy, const AttentionInputs& in, Tensor* dmemory,
                  const Tensor& x = Tensor());
  // Causal self-attention only (Module's one-input form).
  Tensor forward(StepContext& ctx, const Tensor& x) override { return forward(ctx, x, {}); }
  Tensor backward(StepContext& ctx, const Tensor& dy) override { return backward(ctx, dy, {}, nullptr); }

  // On shape s (rank of s.tp). Cross-attention's memory is not counted: one tensor shared by every
  // layer of a block, the block counts it once.
  static ModuleCost cost(const AttentionOptions& o, const CostShape& s);

 private:
  // q and kv always; the attention output and its lse unless selective recompute rebuilds them.
  struct Saved {
    Tensor q, kv, context, lse;
    std::vector<Tensor> tensors() const { return {q, kv, context, lse}; }
  };
  // The mask the op gets (undefined parts: every key), checked against x's batch, the queries' and
  // the keys' lengths.
  ops::AttentionMask checked_mask(const AttentionInputs& in, std::int64_t B, std::int64_t Tq, std::int64_t Tk,
                                  Device device) const;

  TpGroup tp_;
  AttentionKind kind_;
  bool sequence_parallel_, recompute_core_, keep_input_;
  // x as the projections take it: [B,T,C] (under sequence parallelism every rank's rows, gathered).
  Tensor projections_input(const StepContext& ctx, const Tensor& x_in) const;
  std::int64_t heads_, groups_, head_dim_;  // heads_ and groups_ on this rank
  std::int64_t window_left_;                 // AttentionOptions::window_left
  AttentionOptions::SoftmaxType softmax_type_;
  std::unique_ptr<Parameter> softmax_offset_;  // learnable: this rank's heads' sink logits
  mutable Tensor zero_sink_;                   // off-by-one: zeros [heads_] on the device last used
  // The op's sink for this layer's softmax type (undefined: vanilla), f32 on `device`.
  Tensor sink(Device device) const;
  AttentionOptions::Rotary rotary_;
  float dropout_;
  std::uint64_t dropout_site_;
  // The op's shape for this rank's heads; in a training step, with the probabilities' dropout.
  ops::AttentionShape op_shape(const StepContext& ctx, std::int64_t B, std::int64_t T, std::int64_t Tk) const;
  // q [B,T,Hq·D] and the keys of kv [B,T,2·Hkv·D] rotated (inverse: the transpose, for gradients),
  // at positions 0 … T − 1, or under context parallelism (cp) at the rank's tokens' positions.
  void rotate(Tensor& q, Tensor& kv, bool inverse, const Communicator* cp = nullptr) const;
  // ctx's context-parallel group (null: whole sequences); an error for other kinds than causal
  // self-attention.
  const CpGroup& context_parallel(const StepContext& ctx) const;
  // With qk_norm: q [B,T,Hq·D] and the keys of kv [B,T,2·Hkv·D] normalised per head in place of
  // them; with `backward`, dq and dkv taken back through the norms the same way.
  void normalize_qk(StepContext& ctx, Tensor& q, Tensor& kv, bool backward);
  // The attention output [B,T,Hq·D] of q and kv (rotated) with ctx.kv_cache.
  Tensor cached_context(KvCache& cache, Tensor& q, Tensor& kv);
  ColumnParallelLinear query_;
  std::unique_ptr<Module> q_norm_;     // qk_norm: over each head's D channels of q
  std::unique_ptr<Module> key_value_;  // ColumnParallelLinear, or Linear replicated over tp
  std::unique_ptr<Module> k_norm_;     // qk_norm: of the keys
  RowParallelLinear output_;
};

}  // namespace tessera
