// What every Megatron-style transformer model plugin (GPT, BERT, T5) reads from [model]: sizes,
// dropout, initialisation, vocabulary padding and activation recompute, checked against the
// tensor- and pipeline-parallel sizes with the same keys and ConfigErrors everywhere; the layers
// those options describe; and Megatron-LM's model-FLOPs formula.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/nn/moe.hpp"
#include "tessera/nn/recompute.hpp"
#include "tessera/parallel/parallel_layout.hpp"
#include "tessera/nn/transformer_block.hpp"

namespace tessera {

class ConfigSection;

struct TransformerOptions {
  std::int64_t num_layers = 2, hidden_size = 64, num_attention_heads = 4, num_query_groups = 0;
  // Channels of each attention head (Megatron-LM's kv_channels): hidden / heads unless [model]
  // kv_channels says otherwise; the query and output projections are then heads·kv_channels wide.
  std::int64_t kv_channels = 16;
  std::int64_t ffn_hidden_size = 0;  // 0 → 4·hidden
  std::int64_t seq_length = 64, max_position_embeddings = 0;  // 0 → seq_length
  std::int64_t vocab_size = 0, padded_vocab_size = 0;
  float hidden_dropout = 0.0f, attention_dropout = 0.0f, init_method_std = 0.02f, layernorm_epsilon = 1e-5f;
  std::uint64_t seed = 1234;
  RecomputeOptions recompute;  // Megatron-LM's recompute_* keys (nn/recompute.hpp)
  // apply_residual_connection_post_layernorm: each sublayer's residual is its norm's output, not its
  // input (Megatron-LM's --apply-residual-connection-post-layernorm).
  bool residual_post_norm = false;
  // The GELU MLP's exact erf form instead of the tanh one: Megatron-LM computes F.gelu with
  // --no-bias-gelu-fusion (bias_gelu_fusion = false) unless --openai-gelu (openai_gelu = true).
  bool exact_gelu = false;
  // --openai-gelu: the tanh form everywhere, also in BERT's LM head (whose GELU is otherwise F.gelu's erf).
  bool openai_gelu = false;
  // Llama-style blocks (read_llama_style_options, docs/llama.md; Megatron-Core's key names). The
  // defaults are GPT-2's, which BERT and T5 keep.
  // position_embedding_type: "learned_absolute" (a position table: learned_positions), "rope"
  // (rotary, in attention) or "none" (neither: NoPE, the causal mask alone orders the tokens).
  bool rope = false, learned_positions = true;
  double rotary_percent = 1.0, rotary_base = 10000.0;
  double rope_scaling_factor = 0.0;  // use_rope_scaling: rope_scaling_factor (Llama 3.1); 0: none
  double rotary_interpolation = 1.0;  // rotary_seq_len_interpolation_factor: positions divided by it; 1: none
  RopeYarn rope_yarn;  // position_embedding_type = "yarn": YaRN's settings (yarn_* keys); factor 0: plain rope
  bool rotary_interleaved = false;
  bool rms_norm = false;  // normalization = "RMSNorm" (else "LayerNorm")
  bool apply_layernorm_1p = false;  // LayerNorm scaling by 1 + γ, γ from 0 (Megatron's --apply-layernorm-1p)
  // swiglu: the MLP's fc1 is a gated linear unit, SwiGLU unless `glu` says otherwise: quick_geglu
  // (the gate's quick GELU, α = 1.702), activation_func_clamp_value and glu_linear_offset (gpt-oss's
  // experts), all Megatron-Core's (tessera/gated_linear_unit.hpp).
  bool swiglu = false, untie_embeddings_and_output_weights = false, add_bias_linear = true;
  GatedLinearUnit glu{};
  bool squared_relu = false;  // the MLP's max(x, 0)² instead of GELU (Megatron's --squared-relu)
  bool add_qkv_bias = false;  // biases on the query and key/value projections even without add_bias_linear
  bool qk_layernorm = false;  // the layers' norm over each head of q and k (Megatron-Core's qk_layernorm)
  // Sliding-window attention (Megatron-Core's window_size [left, 0]): query i attends keys
  // i − window_left … i only (Mistral's sliding_window = window_left + 1); −1: every earlier key.
  // window_layer_pattern (Megatron-Core's window_attn_skip_freq) marks the layers with the window,
  // the others attending every earlier key; empty: every layer.
  std::int64_t window_left = -1;
  std::vector<bool> window_layer_pattern;
  std::int64_t window_left_of(std::int64_t layer) const {
    return window_layer_pattern.empty() || window_layer_pattern.at(static_cast<std::size_t>(layer)) ? window_left : -1;
  }
  std::int64_t window_layers() const;  // how many layers have the window
  // Megatron-Core's no_rope_freq: the layers flagged true have no rotary positions (NoPE layers among
  // rope ones: Llama 4, SmolLM3); empty: rope in every layer.
  std::vector<bool> nope_layer_pattern;
  bool rope_in_layer(std::int64_t layer) const {
    return rope && (nope_layer_pattern.empty() || !nope_layer_pattern.at(static_cast<std::size_t>(layer)));
  }
  // Megatron-Core's softmax_type: "vanilla", "off-by-one" or "learnable" (attention sinks;
  // AttentionOptions::SoftmaxType).
  AttentionOptions::SoftmaxType softmax_type = AttentionOptions::SoftmaxType::vanilla;
  // Mixture of experts (read_moe_options; moe.router.experts = 0: dense MLPs). The MLP of each layer
  // moe_layer(i) names is then a MoeLayer whose experts take the swiglu / squared_relu activation;
  // moe_layer_pattern (Megatron-Core's moe_layer_freq) marks them, empty: every layer.
  MoeOptions moe;
  std::vector<bool> moe_layer_pattern;
  bool moe_layer(std::int64_t layer) const {
    return moe.router.experts > 0 &&
           (moe_layer_pattern.empty() || moe_layer_pattern.at(static_cast<std::size_t>(layer)));
  }
  std::int64_t moe_layers() const;  // how many layers moe_layer names
  std::vector<std::int64_t> moe_layer_indices() const;  // which
  // Multi-token prediction (GPT; Megatron-Core's mtp_num_layers and mtp_loss_scaling_factor,
  // docs/mtp.md): after the last layer, depth k = 1 … mtp_num_layers predicts the token k + 1 places
  // further on with one more layer built like the last one (model layer index num_layers + k − 1);
  // its losses, each a mean over its tokens, join the objective as
  // mtp_loss_scaling_factor / mtp_num_layers · Σ_k loss_k. 0: none.
  std::int64_t mtp_num_layers = 0;
  double mtp_loss_scaling_factor = 0.1;
  // Megatron-Core's mtp_use_repeated_layer (Qwen3.5's mtp_share_layers): one depth's weights
  // ("mtp.layers.0.*") applied at every depth, its gradients summed over them; each application
  // draws its own dropout masks, as a second call of a layer does in Megatron-Core.
  bool mtp_use_repeated_layer = false;
  // The depths with weights of their own: 1 when repeated, else mtp_num_layers.
  std::int64_t mtp_physical_layers() const { return mtp_use_repeated_layer ? std::min<std::int64_t>(1, mtp_num_layers) : mtp_num_layers; }
  // Channels of each head rotary positions rotate: int(kv_channels·rotary_percent); 0 without rope.
  std::int64_t rotary_dim() const;
};

// Reads every such [model] key (docs/configs.md) and checks it against the layout's sizes:
// ConfigError naming the key and its origin for anything the model cannot be built with (the layers'
// split over pipeline stages: parallel/pipeline_layers.hpp). The vocabulary is padded to a multiple
// of make_vocab_size_divisible_by × tp (Megatron-LM). `model` names the plugin in messages.
TransformerOptions read_transformer_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                                            const ParallelSizes& sizes, const std::string& model);

// The layers' residual and GELU keys every transformer takes (read_transformer_options reads them;
// T5 too): apply_residual_connection_post_layernorm, and the MLP's GELU from bias_gelu_fusion and
// openai_gelu (Megatron-LM's fused bias-GELU is the tanh form, F.gelu without the fusion the exact
// erf form, --openai-gelu the tanh form either way).
void read_residual_and_gelu(const ConfigSection& s, TransformerOptions& o);

// [model] kv_channels (Megatron-LM's --kv-channels), ≥ 1; unset, hidden_size / num_attention_heads,
// which must divide (ConfigError naming the keys otherwise).
std::int64_t read_kv_channels(const ConfigSection& s, std::int64_t hidden_size, std::int64_t num_attention_heads);

// The Llama-style [model] keys a decoder model (GPT) accepts on top of read_transformer_options's,
// with Megatron-Core's names: position_embedding_type ("learned_absolute" | "rope" | "none"), rotary_percent
// (0, 1], rotary_base, rotary_interleaved, normalization ("LayerNorm" | "RMSNorm"), norm_epsilon
// (layernorm_epsilon's alias; not both), swiglu (ffn_hidden_size unset: int(4h·2/3/64)·64, as
// Megatron-Core), untie_embeddings_and_output_weights, add_bias_linear, add_qkv_bias, qk_layernorm. Sets them in `o` (read by
// read_transformer_options from the same section with the same tp), ConfigError naming key and
// origin for a value the model cannot be built with.
void read_llama_style_options(const ConfigSection& s, TransformerOptions& o, std::int64_t tp);

// Megatron-Core's mixture-of-experts [model] keys (GPT; docs/moe.md): num_experts (unset: dense),
// moe_router_topk (2), moe_ffn_hidden_size (ffn_hidden_size), moe_router_load_balancing_type
// ("aux_loss" | "seq_aux_loss" | "none"), moe_aux_loss_coeff (0), moe_z_loss_coeff (0), moe_router_pre_softmax
// (false), moe_router_topk_scaling_factor (1; with pre_softmax), moe_shared_expert_intermediate_size
// (unset: no shared expert), moe_layer_freq (1: every layer; N:
// layers 0, N, 2N, …; or an array of num_layers 0/1 flags); read after the activation keys. ConfigError naming key and origin for a value the model
// cannot be built with, or for a moe_* key without num_experts.
void read_moe_options(const ConfigSection& s, TransformerOptions& o, const ParallelSizes& sizes);

// Megatron-Core's multi-token prediction keys (GPT; docs/mtp.md): mtp_num_layers (0: none; below
// seq_length), mtp_loss_scaling_factor (0.1, ≥ 0) and mtp_use_repeated_layer (false), the last two
// only with mtp_num_layers. ConfigError naming key and origin otherwise.
void read_mtp_options(const ConfigSection& s, TransformerOptions& o);

// A decoder-only GPT's [model]: read_transformer_options, then read_llama_style_options,
// read_moe_options and read_mtp_options — the gpt plugin's keys, and what tools reading a saved GPT's config need
// (Hugging Face export, tessera bench's PyTorch twin). `model` names the plugin in messages.
TransformerOptions read_gpt_style_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                                          const ParallelSizes& sizes, const std::string& model);

// A model of one stack of layers (GPT, BERT) refuses parallel.pipeline_model_parallel_split_rank,
// which only an encoder-decoder can use: ConfigError naming `model`.
void refuse_pipeline_split(int pipeline_split_rank, const std::string& model);

// The layers [first_layer, first_layer + count) of a model chunk: pre-LayerNorm, causal
// self-attention (set spec.self_attention for an encoder), GELU MLP, and the final LayerNorm
// "final_layernorm" when the chunk ends the model — or, with the Llama-style options, RMSNorm
// (still named ln1/ln2/final_layernorm), rotary positions, SwiGLU and bias-free linears.
TransformerBlockOptions transformer_block_options(const TransformerOptions& o, TpGroup tp, bool sequence_parallel,
                                                  std::int64_t first_layer, std::int64_t count, bool ends_model);

// Megatron-LM's model FLOPs of one iteration over `sequences` sequences (forward + backward, no
// recompute): 24·f·B·s·l·h² + 4·f·B·s²·l·h + 6·B·s·h·V with f = 3, K/V shrunk by query groups;
// with swiglu the MLP counts three ffn×h matrices instead of two (Megatron's gated-linear ×3/2).
double transformer_flops_per_iteration(const TransformerOptions& o, std::int64_t sequences);

}  // namespace tessera
