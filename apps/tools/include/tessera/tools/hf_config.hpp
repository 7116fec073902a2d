// The GPT shapes Hugging Face transformers and Tessera share, and their config files: config.json
// of `gpt2` (GPT2LMHeadModel), `gpt_bigcode` (GPTBigCodeForCausalLM: MHA or multi-query), `llama`
// (LlamaForCausalLM, and its kin mistral, qwen2, qwen3, phi3 and starcoder2) and the mixtures of experts `mixtral`,
// `qwen2_moe`, `qwen3_moe`, `gpt_oss` and `glm4_moe`, and `smollm3` on one side, Tessera's [model] keys (docs/configs.md, docs/llama.md,
// docs/moe.md) on the other. docs/checkpoints.md "Hugging Face export and import" lists the key names.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tessera/nn/transformer_options.hpp"

namespace tessera {

// One GPT as both sides describe it.
// What every transformer both sides describe has (GPTs here, BERT in hf_bert.hpp).
struct HfTransformerDims {
  std::int64_t layers = 0, hidden = 0, heads = 0, ffn = 0, vocab = 0, positions = 0;
  double norm_epsilon = 1e-5, init_std = 0.02, dropout = 0.0, attention_dropout = 0.0;
  std::int64_t bos = -1, eos = -1;      // token ids, -1: unknown
  std::string torch_dtype = "float32";  // the weights' (export: config.json's torch_dtype)
  // Export: the sizes and settings of `o` (floats as their shortest decimals).
  void set_from(const TransformerOptions& o);
};

struct HfGptShape : HfTransformerDims {
  // "gpt2", "gpt_bigcode", "llama", "mistral", "qwen2", "qwen3", "phi3", "starcoder2", "mixtral", "qwen2_moe",
  // "qwen3_moe", "gpt_oss", "smollm3", "glm4_moe"
  std::string architecture;
  std::int64_t groups = 0;
  double rotary_base = 10000.0;
  bool tied = true;
  bool rotary_interleaved = false;  // Tessera's layout of the file's q/k rows (export permutes to HF's)
  double rotary_percent = 1.0;      // phi3's partial_rotary_factor: the share of each head rope rotates
  // The sliding_window of mistral, mixtral, phi3, starcoder2 and the Qwens (with use_sliding_window)
  // (Tessera's window_size [sliding_window − 1, 0]); 0: none. The Qwens' layer_types (or, before it,
  // max_window_layers) pick the layers that have it: window_layers (Tessera's window_attn_skip_freq
  // flags), empty: every layer.
  std::int64_t sliding_window = 0;
  std::vector<bool> window_layers;
  std::int64_t kv_channels = 0;     // llama's head_dim (Tessera's kv_channels); 0: hidden / heads
  // llama's rope_scaling {"rope_type": "llama3", "factor": f, …} (Llama 3.1, 3.2): Tessera's
  // use_rope_scaling with rope_scaling_factor f; 0: none.
  double rope_scaling_factor = 0.0;
  // llama's rope_scaling {"rope_type": "linear", "factor": f} (positions divided by f): Tessera's
  // rotary_seq_len_interpolation_factor f; 1: none.
  double rope_interpolation = 1.0;
  // rope_scaling {"rope_type": "yarn", …}: Tessera's position_embedding_type = "yarn" with these
  // settings (factor 0: none).
  RopeYarn yarn{};
  // Tessera's apply_layernorm_1p (export only): LayerNorm weights γ written as 1 + γ.
  bool layernorm_1p = false;
  // The MLP's exact erf GELU (Tessera's bias_gelu_fusion = false; HF's "gelu"), else the tanh form.
  bool exact_gelu = false;
  // Biases on q, k and v (Tessera's add_qkv_bias): qwen2's always, qwen2_moe's unless its config
  // says "qkv_bias": false; starcoder2's with use_bias.
  bool qkv_bias = false;
  // starcoder2's use_bias: biases on o_proj, c_fc and c_proj too (and q, k, v: qkv_bias).
  bool linear_bias = false;
  // The sparse MLPs: num_experts (mixtral's num_local_experts; 0: dense) and num_experts_per_tok
  // (moe_router_topk), each expert of `expert_ffn` (moe_ffn_hidden_size; mixtral's
  // intermediate_size, the Qwen MoEs' moe_intermediate_size).
  std::int64_t experts = 0, experts_per_token = 0, expert_ffn = 0;
  // The Qwen MoEs: the routing weights renormalised over the chosen experts (norm_topk_prob: Tessera's
  // default routing; false: the chosen entries of the softmax over all experts, Tessera's
  // moe_router_pre_softmax); qwen2_moe's gated shared expert of `shared_ffn`
  // (shared_expert_intermediate_size: moe_shared_expert_intermediate_size with moe_shared_expert_gate);
  // which layers are mixtures (Tessera's moe_layer_freq; the others dense MLPs of `ffn`, the Qwen
  // MoEs' intermediate_size), empty: every layer.
  bool norm_topk_prob = true;
  std::int64_t shared_ffn = 0;
  std::vector<bool> moe_layers;
  // glm4_moe's router (DeepSeek-V3's; transformers' Glm4MoeTopkRouter): sigmoid scores chosen with the
  // expert bias (e_score_correction_bias: Tessera's router.expert_bias), in expert groups (n_group,
  // topk_group: Tessera's moe_router_num_groups, moe_router_group_topk; 0: none), the chosen scores
  // renormalised times routed_scaling_factor (moe_router_topk_scaling_factor); its shared expert
  // ungated, n_shared_experts × moe_intermediate_size wide; its optional RMSNorms over each head of
  // q and k (use_qk_norm: Tessera's qk_layernorm).
  double routed_scaling = 1.0;
  std::int64_t expert_groups = 0, group_topk = 0;
  bool use_qk_norm = false;
  std::int64_t head_dim() const { return kv_channels > 0 ? kv_channels : hidden / heads; }
  // The Llama family: llama; mistral (llama's layers, here without a sliding window); qwen2 (biases
  // on q, k and v: Tessera's add_qkv_bias); qwen3 (RMSNorms over each head of q and k: Tessera's
  // qk_layernorm); mixtral (mistral's with mixture-of-experts MLPs); qwen2_moe and qwen3_moe (qwen2's
  // and qwen3's with mixture-of-experts MLPs).
  bool llama() const {
    return architecture == "llama" || architecture == "mistral" || architecture == "qwen2" || architecture == "qwen3" ||
           phi3() || starcoder2() || smollm3() || moe();
  }
  // SmolLM3's layers: llama's, with rotary positions skipped in the layers no_rope_layers marks 0
  // (Tessera's no_rope_freq flags, nope_layers: true where a layer has none).
  bool smollm3() const { return architecture == "smollm3"; }
  std::vector<bool> nope_layers;
  // gpt-oss's layers (GptOssForCausalLM): llama's attention with biases on q, k, v and o and a learned
  // sink per head (Tessera's softmax_type "learnable"), a sliding window in the layers layer_types
  // picks, YaRN positions, and mixture-of-experts MLPs only: a router with a bias, its top k logits'
  // softmax, and experts of gpt-oss's gated unit (quick GELU gate, both halves clamped at 7, the
  // linear half plus 1: Tessera's quick_geglu, activation_func_clamp_value 7, glu_linear_offset 1)
  // with biases, stored packed (gate_up_proj [E, C, 2F] with gate and up columns interleaved,
  // down_proj [E, F, C]).
  bool gpt_oss() const { return architecture == "gpt_oss"; }
  // StarCoder2's layers: rope and grouped queries as llama's, with LayerNorms (weights and biases), a
  // GELU MLP (c_fc, c_proj) and, with use_bias, biases on every linear layer (Tessera's
  // add_bias_linear).
  bool starcoder2() const { return architecture == "starcoder2"; }
  // Phi-3's, Phi-3.5's and Phi-4's layers: llama's with q, k and v in one qkv_proj and the SwiGLU's
  // gate and up in one gate_up_proj, and a partial rotary factor.
  bool phi3() const { return architecture == "phi3"; }
  bool qwen() const { return architecture.rfind("qwen", 0) == 0; }
  bool mixtral() const { return architecture == "mixtral"; }
  bool qwen_moe() const { return architecture == "qwen2_moe" || architecture == "qwen3_moe"; }
  // GLM-4.5's and GLM-4.6's layers (Glm4MoeForCausalLM): llama's attention with optional biases on
  // q, k and v, rope on a part of each head (partial_rotary_factor), the first layers dense, the
  // rest mixtures of SwiGLU experts under the router above, with a shared expert.
  bool glm4_moe() const { return architecture == "glm4_moe"; }
  bool moe() const { return mixtral() || qwen_moe() || gpt_oss() || glm4_moe(); }
  // Whether the file's attention has q_norm / k_norm (qwen3's always, glm4_moe's with use_qk_norm).
  bool has_qk_norm() const { return qk_norm() || use_qk_norm; }
  bool qk_norm() const { return architecture == "qwen3" || architecture == "qwen3_moe"; }
  // Whether layer i's MLP is a mixture of experts.
  bool moe_layer(std::int64_t i) const {
    return moe() && (moe_layers.empty() || moe_layers.at(static_cast<std::size_t>(i)));
  }
};

// gpt_oss's clamp of the experts' gated unit (transformers' GptOssExperts.limit, config.json's
// swiglu_limit): Tessera's activation_func_clamp_value.
inline constexpr double kGptOssSwigluLimit = 7.0;

// The HF architecture a Tessera GPT maps to: `requested` ("" = choose: llama for a Llama-style model,
// gpt2 for multi-head attention, gpt_bigcode for multi-query), checked against the model's options.
// ConfigError naming the [model] key (and `source`, the config's file) that the architecture cannot
// express.
HfGptShape hf_shape_for_export(const TransformerOptions& o, const std::string& requested, const std::string& source);

// config.json text for `shape`; `extra` adds top-level keys (JSON values as text).
std::string hf_config_json(const HfGptShape& shape, const std::map<std::string, std::string>& extra = {});

// Reads a config.json: FormatError naming `path` and the key for an unknown model_type or a setting
// Tessera has no equivalent of (an activation, attention scaling, rope scaling, biases).
HfGptShape parse_hf_config(const std::string& text, const std::string& path);

// The [model] section (TOML, with its header) of a Tessera GPT with this shape.
std::string tessera_model_toml(const HfGptShape& shape);

}  // namespace tessera
