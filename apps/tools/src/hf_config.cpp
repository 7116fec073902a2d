#include "tessera/tools/hf_config.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hf_common.hpp"
#include "tessera/error.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "tessera/rope_frequency.hpp"

namespace tessera {

namespace {

const auto tidy = hf::shortest_decimal;
using hf::toml_float;

// The routers Mixtral's and the Qwen MoEs' configs can express: a softmax over every expert's logit,
// the top k, their weights renormalised (Mixtral; the Qwen MoEs with norm_topk_prob) or not (the
// Qwen MoEs without: Tessera's pre-softmax routing, unscaled); qwen2_moe's gated shared expert.
// glm4_moe's router (HfGptShape): sigmoid scores; top-k of at least 2 (transformers renormalises a
// single chosen score to 1, Tessera keeps it); expert groups scored by their two best experts
// (Tessera's by topk / group_topk of them); an ungated shared expert a whole number of experts
// wide; dense layers first only (first_k_dense_replace).
template <class Refuse>
void check_glm4_moe_router(const TransformerOptions& o, const Refuse& refuse) {
  const MoeRouterOptions& r = o.moe.router;
  if (!r.sigmoid) throw refuse("moe_router_score_function", "its router's scores are sigmoids (\"sigmoid\")");
  if (r.topk < 2)
    throw refuse("moe_router_topk", "it renormalises the chosen experts' scores, a single one to 1 (Tessera's "
                                    "top-1 keeps the score): route to 2 experts or more");
  if (r.num_groups > 0 && r.topk != 2 * r.group_topk)
    throw refuse("moe_router_group_topk", fmt::format("its expert groups are scored by their two best experts, "
                                                      "Tessera's by moe_router_topk / moe_router_group_topk = {}",
                                                      static_cast<double>(r.topk) / static_cast<double>(r.group_topk)));
  if (o.moe.shared_ffn_hidden == 0 || o.moe.shared_ffn_hidden % o.moe.ffn_hidden != 0)
    throw refuse("moe_shared_expert_intermediate_size", "its shared expert is n_shared_experts ≥ 1 experts wide (a "
                                                        "multiple of moe_ffn_hidden_size)");
  if (o.moe.shared_gate) throw refuse("moe_shared_expert_gate", "its shared expert is not gated");
  const auto first_moe = std::find(o.moe_layer_pattern.begin(), o.moe_layer_pattern.end(), true);
  if (std::find(first_moe, o.moe_layer_pattern.end(), false) != o.moe_layer_pattern.end())
    throw refuse("moe_layer_freq", "its dense layers come first, every later one a mixture (first_k_dense_replace)");
}

template <class Refuse>
void check_exportable_router(const TransformerOptions& o, const HfGptShape& s, const Refuse& refuse) {
  const MoeRouterOptions& r = o.moe.router;
  if (r.experts == 0)
    throw refuse("num_experts", "its MLPs are mixtures of experts, this model's dense (llama, qwen2 and qwen3 have "
                                "dense MLPs)");
  if (s.glm4_moe()) {
    check_glm4_moe_router(o, refuse);
    return;
  }
  if (r.sigmoid) throw refuse("moe_router_score_function", "its router's scores are a softmax (glm4_moe's are sigmoids)");
  if (r.sinkhorn)
    throw refuse("moe_router_load_balancing_type",
                 "its router weighs the chosen experts by a softmax, not Sinkhorn routing's scores");
  if (r.expert_bias) throw refuse("moe_router_enable_expert_bias", "its router has no expert bias");
  if (r.num_groups > 0) throw refuse("moe_router_num_groups", "its router chooses among all experts");
  if (r.topk_scaling_factor != 1.0)
    throw refuse("moe_router_topk_scaling_factor", "its routing weights are not scaled");
  if (s.mixtral() || s.gpt_oss()) {
    if (r.pre_softmax)
      throw refuse("moe_router_pre_softmax", "its routing weights are renormalised over the chosen experts (qwen2_moe "
                                             "and qwen3_moe can leave them unnormalised)");
    if (!o.moe_layer_pattern.empty())
      throw refuse("moe_layer_freq", "every one of its layers is a mixture of experts (the Qwen MoEs can have dense ones)");
  }
  if (s.architecture != "qwen2_moe" && o.moe.shared_ffn_hidden > 0)
    throw refuse("moe_shared_expert_intermediate_size", "it has no shared expert (qwen2_moe has a gated one)");
  if (s.architecture == "qwen2_moe" && o.moe.shared_ffn_hidden == 0)
    throw refuse("moe_shared_expert_intermediate_size", "every layer of it has a shared expert");
  if (s.architecture == "qwen2_moe" && !o.moe.shared_gate)
    throw refuse("moe_shared_expert_gate", "its shared expert's output is gated (moe_shared_expert_gate = true)");
}

// What gpt_oss's config cannot vary: the experts' gated unit, the learned sinks, biases on every
// linear layer (the router's and the experts' are there whatever attention_bias says).
template <class Refuse>
void check_gpt_oss_blocks(const TransformerOptions& o, const Refuse& refuse) {
  if (!o.swiglu || o.glu.alpha != kQuickGeluAlpha)
    throw refuse("quick_geglu", "its experts' gated unit is the quick GELU's (quick_geglu = true)");
  if (o.glu.clamp != static_cast<float>(kGptOssSwigluLimit))
    throw refuse("activation_func_clamp_value", "its experts clamp their gated unit's halves at 7");
  if (o.glu.linear_offset != 1.0f) throw refuse("glu_linear_offset", "its experts add 1 to the linear half");
  if (o.softmax_type != AttentionOptions::SoftmaxType::learnable)
    throw refuse("softmax_type", "its attention has a learned sink per head (softmax_type = \"learnable\")");
  if (!o.add_bias_linear)
    throw refuse("add_bias_linear", "its router, experts and attention projections have biases");
}

const char* hf_causal_lm_class(const std::string& architecture) {
  static const std::map<std::string, const char*> classes = {
      {"llama", "LlamaForCausalLM"},     {"mistral", "MistralForCausalLM"},     {"qwen2", "Qwen2ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"},     {"mixtral", "MixtralForCausalLM"},     {"qwen2_moe", "Qwen2MoeForCausalLM"},
      {"qwen3_moe", "Qwen3MoeForCausalLM"}, {"phi3", "Phi3ForCausalLM"}, {"starcoder2", "Starcoder2ForCausalLM"},
      {"gpt_oss", "GptOssForCausalLM"}, {"smollm3", "SmolLM3ForCausalLM"}, {"glm4_moe", "Glm4MoeForCausalLM"}};
  return classes.at(architecture);
}

}  // namespace

void HfTransformerDims::set_from(const TransformerOptions& o) {
  layers = o.num_layers;
  hidden = o.hidden_size;
  heads = o.num_attention_heads;
  ffn = o.ffn_hidden_size;
  vocab = o.vocab_size;
  positions = o.max_position_embeddings;
  norm_epsilon = tidy(o.layernorm_epsilon);
  init_std = tidy(o.init_method_std);
  dropout = tidy(o.hidden_dropout);
  attention_dropout = tidy(o.attention_dropout);
}

namespace {

// The architecture that expresses the model's options (docs/checkpoints.md lists the rule), before
// hf_shape_for_export checks every option against it.
std::string natural_architecture(const TransformerOptions& o) {
  const bool experts = o.moe.router.experts > 0;
  if (o.swiglu && o.glu.alpha == kQuickGeluAlpha) return "gpt_oss";
  if (!o.nope_layer_pattern.empty()) return "smollm3";
  if (experts && o.moe.router.sigmoid) return "glm4_moe";
  if (!o.rope && !o.rms_norm && !o.swiglu) return o.num_query_groups == o.num_attention_heads ? "gpt2" : "gpt_bigcode";
  if (!o.rms_norm && !o.swiglu && !experts) return "starcoder2";
  if (o.qk_layernorm) return experts ? "qwen3_moe" : "qwen3";
  if (experts) return o.add_qkv_bias || o.moe.shared_ffn_hidden > 0 ? "qwen2_moe" : "mixtral";
  if (o.add_qkv_bias) return "qwen2";
  if (o.rotary_percent != 1.0) return "phi3";
  return o.window_left >= 0 ? "mistral" : "llama";
}

}  // namespace

HfGptShape hf_shape_for_export(const TransformerOptions& o, const std::string& requested, const std::string& source) {
  const bool experts = o.moe.router.experts > 0;
  HfGptShape s;
  s.architecture = requested.empty() ? natural_architecture(o) : requested;
  if (s.architecture != "gpt2" && s.architecture != "gpt_bigcode" && !s.llama())
    throw ConfigError(fmt::format("--architecture {}: export writes gpt2, gpt_bigcode, llama, mistral, qwen2, qwen3, "
                                  "phi3, starcoder2, smollm3, mixtral, qwen2_moe, qwen3_moe, gpt_oss or glm4_moe",
                                  quote_untrusted(s.architecture)));
  const auto refuse = [&](const char* key, const std::string& why) {
    return ConfigError(fmt::format("model.{} in {}: {}, so this model cannot be exported as Hugging Face's {}", key,
                                   source, why, s.architecture));
  };
  if (o.qk_layernorm && !s.qk_norm() && !s.glm4_moe())
    throw refuse("qk_layernorm", "it has no norms on q and k (qwen3 and glm4_moe have them)");
  s.use_qk_norm = s.glm4_moe() && o.qk_layernorm;
  if (!o.qk_layernorm && s.qk_norm())
    throw refuse("qk_layernorm", "its attention normalises each head of q and k (qk_layernorm = true)");
  if (o.squared_relu) throw refuse("squared_relu", "its MLP activation is not squared ReLU");
  if (s.gpt_oss()) {
    check_gpt_oss_blocks(o, refuse);
  } else {
    if (o.swiglu && o.glu.alpha != 1.0f)
      throw refuse("quick_geglu", "its gated MLP's activation is SiLU (SwiGLU; gpt_oss has the quick GELU)");
    if (o.swiglu && std::isfinite(o.glu.clamp))
      throw refuse("activation_func_clamp_value", "its gated MLP clamps nothing (gpt_oss clamps at 7)");
    if (o.swiglu && o.glu.linear_offset != 0.0f)
      throw refuse("glu_linear_offset", "its gated MLP adds no offset (gpt_oss adds 1)");
    if (o.softmax_type != AttentionOptions::SoftmaxType::vanilla)
      throw refuse("softmax_type", "its attention softmax has no sink (gpt_oss has learned ones)");
  }
  if (!o.nope_layer_pattern.empty() && !s.smollm3())
    throw refuse("no_rope_freq", "it has rotary positions in every layer (smollm3 has NoPE layers)");
  s.nope_layers = o.nope_layer_pattern;
  if (experts && !s.moe())
    throw refuse("num_experts", "its MLPs are dense (no mixture of experts; mixtral, qwen2_moe, qwen3_moe and gpt_oss "
                                "have them)");
  if (s.moe()) check_exportable_router(o, s, refuse);
  if (o.residual_post_norm)
    throw refuse("apply_residual_connection_post_layernorm", "its residuals are the sublayers' inputs, not their norms'");
  if (s.llama()) {
    if (!o.rope)
      throw refuse("position_embedding_type", fmt::format("llama has rotary positions (\"rope\"), this model {}",
                                                          o.learned_positions ? "a learned table" : "none"));
    if (o.rotary_percent != 1.0 && !s.phi3() && !s.glm4_moe())
      throw refuse("rotary_percent", fmt::format("{} rotates every channel of a head (1.0), this model {} (phi3 "
                                                 "has a partial_rotary_factor)",
                                                 s.architecture, o.rotary_percent));
    if (o.rotary_percent != 1.0 && o.rotary_interleaved)
      throw refuse("rotary_interleaved", "export permutes interleaved rotary pairs over whole heads only");
    if (s.starcoder2()) {  // llama's attention, GPT-2's norms and MLP
      if (o.rms_norm) throw refuse("normalization", "starcoder2 has LayerNorm, this model RMSNorm");
      if (o.swiglu) throw refuse("swiglu", "starcoder2's MLP is GELU (c_fc, c_proj), this model's SwiGLU");
      if (o.apply_layernorm_1p) throw refuse("apply_layernorm_1p", "starcoder2's LayerNorms are plain ones");
      if (o.add_qkv_bias && !o.add_bias_linear)
        throw refuse("add_qkv_bias", "starcoder2 has biases on every linear layer (use_bias) or on none");
      if (o.kv_channels * o.num_attention_heads != o.hidden_size)
        throw refuse("kv_channels", "starcoder2's heads have hidden_size / num_attention_heads channels");
      s.linear_bias = o.add_bias_linear;
    } else {
      if (!o.rms_norm) throw refuse("normalization", "llama has \"RMSNorm\", this model LayerNorm");
      if (!o.swiglu) throw refuse("swiglu", "llama's MLP is SwiGLU (swiglu = true), this model's GELU");
      if (o.add_bias_linear && !s.gpt_oss())
        throw refuse("add_bias_linear", "llama's linear layers have no biases (add_bias_linear = false)");
      s.linear_bias = s.gpt_oss();  // gpt_oss: attention_bias, on o_proj too
    }
    // qwen2 has biases on q, k and v; qwen2_moe too unless its config says "qkv_bias": false (a key
    // transformers reads since 2025; older versions expect the biases). qwen3's attention_bias would
    // put one on o_proj too, which Tessera lacks.
    const bool biases = s.architecture == "qwen2" || ((s.architecture == "qwen2_moe" || s.glm4_moe()) && o.add_qkv_bias) ||
                        s.linear_bias;
    if (o.add_qkv_bias && !biases)
      throw refuse("add_qkv_bias", fmt::format("{}'s attention has no biases (qwen2 and qwen2_moe have them on q, k and "
                                               "v)",
                                               s.architecture));
    if (!o.add_qkv_bias && s.architecture == "qwen2")
      throw refuse("add_qkv_bias", "qwen2's q, k and v projections have biases (add_qkv_bias = true)");
    s.qkv_bias = biases;
    if (biases && !s.gpt_oss() && !s.glm4_moe() && o.kv_channels * o.num_attention_heads != o.hidden_size)
      throw refuse("kv_channels", fmt::format("{}'s heads have hidden_size / num_attention_heads channels", s.architecture));
    if (o.window_left >= 0 && s.architecture != "mistral" && !s.mixtral() && !s.phi3() && !s.starcoder2() &&
        !s.qwen() && !s.gpt_oss())
      throw refuse("window_size", fmt::format("{} attends to every earlier position (mistral, mixtral, phi3, "
                                              "starcoder2, the Qwens and gpt_oss have a sliding_window)",
                                              s.architecture));
    if (!o.window_layer_pattern.empty() && !s.qwen() && !s.gpt_oss())
      throw refuse("window_attn_skip_freq", fmt::format("{}'s sliding_window applies to every layer (the Qwens' "
                                                        "and gpt_oss's layer_types pick the layers)",
                                                        s.architecture));
    s.sliding_window = o.window_left + 1;
    s.window_layers = o.window_layer_pattern;
    if (o.rope_scaling_factor > 0.0 && o.rotary_interpolation != 1.0)
      throw refuse("rotary_seq_len_interpolation_factor",
                   "llama's rope_scaling is one kind, Llama 3.1's (use_rope_scaling) or linear, not both");
    if (o.kv_channels * o.num_attention_heads != o.hidden_size) s.kv_channels = o.kv_channels;  // HF's head_dim
  } else {
    if (o.rope) throw refuse("position_embedding_type", "it has learned positions, this model rotary ones (use llama)");
    if (o.window_left >= 0)
      throw refuse("window_size", "it attends to every earlier position (mistral, mixtral, phi3 and starcoder2 have a "
                                  "sliding_window)");
    if (!o.learned_positions) throw refuse("position_embedding_type", "it has learned positions, this model none");
    if (o.rms_norm) throw refuse("normalization", "it has LayerNorm, this model RMSNorm");
    if (o.swiglu) throw refuse("swiglu", "its MLP is GELU, this model's SwiGLU");
    if (!o.add_bias_linear) throw refuse("add_bias_linear", "its linear layers have biases");
    if (s.architecture == "gpt2" && o.num_query_groups != o.num_attention_heads)
      throw refuse("num_query_groups", fmt::format("gpt2 has multi-head attention only (num_query_groups = "
                                                   "num_attention_heads), this model {} query groups of {} heads; "
                                                   "gpt_bigcode has multi-query attention",
                                                   o.num_query_groups, o.num_attention_heads));
    if (o.num_query_groups != 1 && o.num_query_groups != o.num_attention_heads)
      throw refuse("num_query_groups", fmt::format("gpt_bigcode has multi-head or multi-query attention "
                                                   "(num_query_groups = 1), not {} query groups (llama has grouped "
                                                   "queries)",
                                                   o.num_query_groups));
    if (o.kv_channels * o.num_attention_heads != o.hidden_size)
      throw refuse("kv_channels", fmt::format("its heads have hidden_size / num_attention_heads = {} channels, this "
                                              "model's {} (llama has head_dim)",
                                              o.hidden_size / o.num_attention_heads, o.kv_channels));
  }
  s.set_from(o);
  s.groups = o.num_query_groups;
  if (s.moe()) {
    s.experts = o.moe.router.experts;
    s.experts_per_token = o.moe.router.topk;
    s.expert_ffn = o.moe.ffn_hidden;
    s.norm_topk_prob = !o.moe.router.pre_softmax;
    s.shared_ffn = o.moe.shared_ffn_hidden;
    s.moe_layers = o.moe_layer_pattern;
    s.routed_scaling = o.moe.router.topk_scaling_factor;
    s.expert_groups = o.moe.router.num_groups;
    s.group_topk = o.moe.router.group_topk;
  }
  s.rotary_base = o.rotary_base;
  s.rotary_interleaved = o.rotary_interleaved;
  s.rotary_percent = o.rotary_percent;
  s.rope_scaling_factor = o.rope_scaling_factor;
  s.rope_interpolation = o.rotary_interpolation;
  s.yarn = o.rope_yarn;
  if (s.yarn.factor > 0.0) {
    // max_position_embeddings = factor × the original context, which transformers versions that take
    // the factor from that ratio and those that read "factor" agree on.
    const double extended = s.yarn.factor * s.yarn.original_context;
    if (extended != std::floor(extended) || extended > 1e15)
      throw ConfigError(fmt::format("model.yarn_rotary_scaling_factor in {}: {} × {} original positions is not a whole "
                                    "number of positions, which Hugging Face's max_position_embeddings needs",
                                    source, s.yarn.factor, s.yarn.original_context));
    s.positions = static_cast<std::int64_t>(extended);
  }
  s.layernorm_1p = o.apply_layernorm_1p;
  s.exact_gelu = o.exact_gelu;
  s.tied = !o.untie_embeddings_and_output_weights;
  return s;
}

namespace {

// YaRN as transformers' rope_scaling: its magnitude as mscale and mscale_all_dim when both are set
// (transformers reads them only together), else as attention_factor unless it is the default
// 0.1·ln(factor) + 1; truncate only when false (transformers before it always rounded).
nlohmann::ordered_json yarn_rope_scaling(const RopeYarn& y) {
  nlohmann::ordered_json v = {{"rope_type", "yarn"},
                              {"factor", y.factor},
                              {"original_max_position_embeddings", static_cast<std::int64_t>(y.original_context)},
                              {"beta_fast", y.beta_fast},
                              {"beta_slow", y.beta_slow}};
  if (y.mscale != 0.0 && y.mscale_all_dim != 0.0) {
    v["mscale"] = y.mscale;
    v["mscale_all_dim"] = y.mscale_all_dim;
  } else if (rope_magnitude(y) != yarn_get_mscale(y.factor, 1.0)) {
    v["attention_factor"] = rope_magnitude(y);
  }
  if (!y.round_to_int) v["truncate"] = false;
  return v;
}

// transformers' layer_types (the Qwens', gpt_oss's): "sliding_attention" in the layers with the
// window (all of them without window_layers), else "full_attention".
nlohmann::ordered_json layer_types_json(const HfGptShape& s) {
  nlohmann::ordered_json types = nlohmann::ordered_json::array();
  for (std::int64_t i = 0; i < s.layers; ++i)
    types.push_back(s.sliding_window > 0 && (s.window_layers.empty() || s.window_layers[static_cast<std::size_t>(i)])
                        ? "sliding_attention"
                        : "full_attention");
  return types;
}

// The Qwens' window: use_sliding_window, and which layers have it. transformers reads layer_types;
// versions before it (2025) read max_window_layers, the layers from it on having the window — the
// same layers where the window starts after the first full ones, as it does in Qwen's configs.
void write_qwen_window_layers(const HfGptShape& s, nlohmann::ordered_json& j) {
  j["use_sliding_window"] = s.sliding_window > 0;
  if (s.sliding_window == 0) return;
  std::int64_t full_first = 0;  // the leading layers without the window
  while (full_first < s.layers && !s.window_layers.empty() && !s.window_layers[static_cast<std::size_t>(full_first)])
    ++full_first;
  j["max_window_layers"] = full_first;
  j["layer_types"] = layer_types_json(s);
}

// glm4_moe: the attention's optional biases (q, k, v) and q/k norms, the partial rotary factor, the
// experts, their router (HfGptShape) and the dense layers before them.
void write_glm4_moe_layers(const HfGptShape& s, nlohmann::ordered_json& j) {
  j["attention_bias"] = s.qkv_bias;
  j["use_qk_norm"] = s.use_qk_norm;
  j["partial_rotary_factor"] = s.rotary_percent;
  j["n_routed_experts"] = s.experts;
  j["num_experts_per_tok"] = s.experts_per_token;
  j["moe_intermediate_size"] = s.expert_ffn;
  j["n_shared_experts"] = s.shared_ffn / s.expert_ffn;
  j["routed_scaling_factor"] = s.routed_scaling;
  j["n_group"] = std::max<std::int64_t>(1, s.expert_groups);
  j["topk_group"] = std::max<std::int64_t>(1, s.group_topk);
  j["norm_topk_prob"] = true;
  std::int64_t dense_first = 0;
  while (dense_first < s.layers && !s.moe_layer(dense_first)) ++dense_first;
  j["first_k_dense_replace"] = dense_first;
}

// gpt_oss: biases on q, k, v and o, the experts (both counts under both names OpenAI's and
// transformers' configs use), the gated unit's clamp, and layer_types: each layer's window or full
// attention. transformers builds the windowed mask whether or not a layer uses it, so a model
// without a window states one as long as the context (a window that limits nothing).
void write_gpt_oss_layers(const HfGptShape& s, nlohmann::ordered_json& j) {
  j["attention_bias"] = true;
  j["num_local_experts"] = s.experts;
  j["num_experts_per_tok"] = s.experts_per_token;
  j["experts_per_token"] = s.experts_per_token;
  j["swiglu_limit"] = kGptOssSwigluLimit;
  j["sliding_window"] = s.sliding_window > 0 ? s.sliding_window : s.positions;
  j["layer_types"] = layer_types_json(s);
  j["output_router_logits"] = false;
}

}  // namespace

std::string hf_config_json(const HfGptShape& s, const std::map<std::string, std::string>& extra) {
  nlohmann::ordered_json j;
  if (s.llama()) {
    j["architectures"] = {hf_causal_lm_class(s.architecture)};
    j["model_type"] = s.architecture;
    j["vocab_size"] = s.vocab;
    j["hidden_size"] = s.hidden;
    j["intermediate_size"] = s.mixtral() || s.gpt_oss() ? s.expert_ffn : s.ffn;  // the Qwen MoEs': their dense layers'
    j["num_hidden_layers"] = s.layers;
    j["num_attention_heads"] = s.heads;
    j["num_key_value_heads"] = s.groups;
    j["head_dim"] = s.head_dim();
    j["max_position_embeddings"] = s.positions;
    j[s.starcoder2() ? "norm_epsilon" : "rms_norm_eps"] = s.norm_epsilon;
    j["rope_theta"] = s.rotary_base;
    if (s.rope_scaling_factor > 0.0) {
      using C = RopeScalingConstants;
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", s.rope_scaling_factor},
                           {"low_freq_factor", C::kLowFreqFactor},
                           {"high_freq_factor", C::kHighFreqFactor},
                           {"original_max_position_embeddings", static_cast<std::int64_t>(C::kOriginalContext)}};
    } else if (s.rope_interpolation != 1.0) {
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", s.rope_interpolation}};
    } else if (s.yarn.factor > 0.0) {
      j["rope_scaling"] = yarn_rope_scaling(s.yarn);
    } else {
      j["rope_scaling"] = nullptr;
    }
    // starcoder2's GELU: Tessera's tanh form, or the exact one with bias_gelu_fusion = false.
    j["hidden_act"] = !s.starcoder2() ? "silu" : s.exact_gelu ? "gelu" : "gelu_pytorch_tanh";
    j["attention_dropout"] = s.attention_dropout;
    if (s.starcoder2()) {
      j["use_bias"] = s.linear_bias;
      j["residual_dropout"] = s.dropout;
      j["embedding_dropout"] = s.dropout;
    }
    if (s.architecture == "llama") {
      j["attention_bias"] = false;
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
    } else if (s.gpt_oss()) {
      write_gpt_oss_layers(s, j);
    } else if (s.glm4_moe()) {
      write_glm4_moe_layers(s, j);
    } else if (s.smollm3()) {  // no window; no_rope_layers: 1 where a layer has rotary positions
      j["attention_bias"] = false;
      j["mlp_bias"] = false;
      j["use_sliding_window"] = false;
      j["sliding_window"] = nullptr;
      j["no_rope_layers"] = nlohmann::ordered_json::array();
      for (std::int64_t i = 0; i < s.layers; ++i)
        j["no_rope_layers"].push_back(s.nope_layers.empty() || !s.nope_layers[static_cast<std::size_t>(i)] ? 1 : 0);
    } else {  // every position attends to all before it, or to a window of them
      if (s.sliding_window > 0)
        j["sliding_window"] = s.sliding_window;
      else
        j["sliding_window"] = nullptr;
      if (s.qwen()) write_qwen_window_layers(s, j);
    }
    if (s.qk_norm()) j["attention_bias"] = false;  // qwen3's would be on q, k, v and o
    if (s.phi3()) {
      j["partial_rotary_factor"] = s.rotary_percent;
      j["original_max_position_embeddings"] = s.positions;
      j["resid_pdrop"] = s.dropout;
      j["embd_pdrop"] = s.dropout;
    }
    if (s.architecture == "qwen2_moe") j["qkv_bias"] = s.qkv_bias;
    if (s.mixtral()) {
      j["num_local_experts"] = s.experts;
      j["num_experts_per_tok"] = s.experts_per_token;
      j["router_jitter_noise"] = 0.0;
    }
    if (s.qwen_moe()) {
      j["num_experts"] = s.experts;
      j["num_experts_per_tok"] = s.experts_per_token;
      j["moe_intermediate_size"] = s.expert_ffn;
      j["norm_topk_prob"] = s.norm_topk_prob;
      if (s.architecture == "qwen2_moe") j["shared_expert_intermediate_size"] = s.shared_ffn;
      // Layer i is sparse unless listed (transformers also needs (i + 1) % decoder_sparse_step == 0).
      j["decoder_sparse_step"] = 1;
      j["mlp_only_layers"] = nlohmann::ordered_json::array();
      for (std::int64_t i = 0; i < s.layers; ++i)
        if (!s.moe_layer(i)) j["mlp_only_layers"].push_back(i);
    }
  } else {
    const bool bigcode = s.architecture == "gpt_bigcode";
    j["architectures"] = {bigcode ? "GPTBigCodeForCausalLM" : "GPT2LMHeadModel"};
    j["model_type"] = s.architecture;
    j["vocab_size"] = s.vocab;
    j["n_positions"] = s.positions;
    j["n_embd"] = s.hidden;
    j["n_layer"] = s.layers;
    j["n_head"] = s.heads;
    j["n_inner"] = s.ffn;
    // Tessera's GELU is the tanh form (gpt2's "gelu_new", gpt_bigcode's "gelu_pytorch_tanh"), or the
    // exact one ("gelu") with bias_gelu_fusion = false.
    j["activation_function"] = s.exact_gelu ? "gelu" : bigcode ? "gelu_pytorch_tanh" : "gelu_new";
    j["resid_pdrop"] = s.dropout;
    j["embd_pdrop"] = s.dropout;
    j["attn_pdrop"] = s.attention_dropout;
    j["layer_norm_epsilon"] = s.norm_epsilon;
    j["scale_attn_weights"] = true;
    if (bigcode) {
      j["multi_query"] = s.groups == 1;
      j["attention_softmax_in_fp32"] = true;
      j["scale_attention_softmax_in_fp32"] = true;
    } else {
      j["n_ctx"] = s.positions;
      j["scale_attn_by_inverse_layer_idx"] = false;
      j["reorder_and_upcast_attn"] = false;
    }
  }
  j["initializer_range"] = s.init_std;
  j["tie_word_embeddings"] = s.tied;
  if (s.bos >= 0) j["bos_token_id"] = s.bos;
  if (s.eos >= 0) j["eos_token_id"] = s.eos;
  j["use_cache"] = true;
  j["torch_dtype"] = s.torch_dtype;
  for (const auto& [key, value] : extra) j[key] = nlohmann::ordered_json::parse(value);
  return j.dump(2) + "\n";
}

namespace {

using Reader = hf::ConfigReader;

// rope_scaling {"rope_type": "yarn", …} (transformers' _compute_yarn_parameters) into s.yarn.
void read_yarn(const Reader& r, const nlohmann::json& v, HfGptShape& s, const std::string& key) {
  const Reader y{v, r.path};
  RopeYarn& out = s.yarn;
  out.factor = y.number("factor", 0.0);
  if (!(out.factor >= 1.0 && out.factor <= 1e6))
    throw r.bad(key, fmt::format("has YaRN factor {}, expected a number ≥ 1", out.factor));
  out.original_context = static_cast<double>(s.positions);
  if (v.contains("original_max_position_embeddings")) {
    out.original_context = static_cast<double>(y.size("original_max_position_embeddings"));
    // transformers versions differ here: some take the factor from max_position_embeddings over it.
    if (static_cast<double>(s.positions) != out.factor * out.original_context)
      throw r.bad(key, fmt::format("has YaRN factor {} with original_max_position_embeddings {}, but "
                                   "max_position_embeddings is {}: transformers versions that take the factor from "
                                   "their ratio and those that read \"factor\" build different models; set "
                                   "max_position_embeddings to {} (factor × original) so that both agree",
                                   out.factor, out.original_context, s.positions, out.factor * out.original_context));
  }
  out.beta_fast = y.has("beta_fast") ? y.number("beta_fast", 32.0) : 32.0;
  out.beta_slow = y.has("beta_slow") ? y.number("beta_slow", 1.0) : 1.0;
  out.round_to_int = y.flag("truncate", true);
  // The magnitude: attention_factor, else mscale / mscale_all_dim when both are non-zero, else
  // 0.1·ln(factor) + 1 (Tessera's mscale 1, mscale_all_dim 0).
  out.mscale = 1.0;
  out.mscale_all_dim = 0.0;
  if (y.has("attention_factor")) {
    const double a = y.number("attention_factor", 1.0);
    if (a != yarn_get_mscale(out.factor, 1.0)) {
      if (out.factor <= 1.0)
        throw r.bad(key, fmt::format("has attention_factor {} with YaRN factor 1, which Tessera's yarn_mscale cannot "
                                     "express",
                                     a));
      out.mscale = (a - 1.0) / (0.1 * std::log(out.factor));  // yarn_get_mscale(factor, mscale) = a
    }
  } else if (y.number("mscale", 0.0) != 0.0 && y.number("mscale_all_dim", 0.0) != 0.0) {
    out.mscale = y.number("mscale", 1.0);
    out.mscale_all_dim = y.number("mscale_all_dim", 0.0);
  }
}

// llama's rope_scaling into `s`: Llama 3.1's, with the constants Megatron-Core's apply_scaling fixes
// (tessera/rope_frequency.hpp), or linear interpolation (positions divided by the factor). Any other
// scaling has no Tessera equivalent.
void read_rope_scaling(const Reader& r, HfGptShape& s, const std::string& key) {
  using C = RopeScalingConstants;
  const nlohmann::json& v = r.j.at(key);
  const auto refuse = [&] {
    return r.bad(key,
                 fmt::format("is {}: Tessera's GPT has plain rotary positions (null), linear interpolation "
                             "({{\"rope_type\": \"linear\", \"factor\": f}}) or Llama 3.1's scaling "
                             "({{\"rope_type\": \"llama3\", \"factor\": f, \"low_freq_factor\": {}, "
                             "\"high_freq_factor\": {}, \"original_max_position_embeddings\": {}}}) only",
                             detail::describe_json(v), C::kLowFreqFactor, C::kHighFreqFactor, C::kOriginalContext));
  };
  if (!v.is_object()) throw refuse();
  const auto text = [&](const char* key) { return v.contains(key) && v[key].is_string() ? v[key].get<std::string>() : ""; };
  const auto number = [&](const char* key) {
    return v.contains(key) && v[key].is_number() ? v[key].get<double>() : std::nan("");
  };
  const std::string type = !text("rope_type").empty() ? text("rope_type") : text("type");
  const double factor = number("factor");
  if (type == "linear" && factor > 0.0 && factor <= 1e6) {
    s.rope_interpolation = factor;
    return;
  }
  if (type == "yarn") {
    read_yarn(r, v, s, key);
    return;
  }
  if (type != "llama3" || !(factor >= 1.0 && factor <= 1e6) || number("low_freq_factor") != C::kLowFreqFactor ||
      number("high_freq_factor") != C::kHighFreqFactor ||
      number("original_max_position_embeddings") != C::kOriginalContext)
    throw refuse();
  s.rope_scaling_factor = factor;
}

// transformers 5's "rope_parameters": rope_theta and the scaling in one object ("rope_type":
// "default" for none).
void read_rope_parameters(const Reader& r, HfGptShape& s) {
  const nlohmann::json& v = r.j.at("rope_parameters");
  if (!v.is_object())
    throw r.bad("rope_parameters", fmt::format("is {}, expected an object", detail::describe_json(v)));
  const Reader inner{v, r.path};
  s.rotary_base = inner.number("rope_theta", s.rotary_base);
  if (inner.text("rope_type", inner.text("type", "default")) != "default") read_rope_scaling(r, s, "rope_parameters");
}

// A sliding window in the layers layer_types says "sliding_attention"; without layer_types in those
// `sliding` flags (each architecture's default). sliding_window: `window` when the key is missing.
void read_layer_types(const Reader& r, HfGptShape& s, std::vector<bool> sliding, std::int64_t window = -1) {
  window = r.size("sliding_window", window);
  if (r.has("layer_types")) {
    const nlohmann::json& v = r.j.at("layer_types");
    if (!v.is_array() || v.size() != sliding.size())
      throw r.bad("layer_types", fmt::format("is {}, expected a list of {} layer types (one per layer)",
                                             detail::describe_json(v), s.layers));
    for (std::size_t i = 0; i < sliding.size(); ++i) {
      if (v[i] != "sliding_attention" && v[i] != "full_attention")
        throw r.bad("layer_types", fmt::format("holds {}, expected \"sliding_attention\" or \"full_attention\"",
                                               detail::describe_json(v[i])));
      sliding[i] = v[i] == "sliding_attention";
    }
  }
  if (window >= s.positions || std::find(sliding.begin(), sliding.end(), true) == sliding.end()) return;
  s.sliding_window = window;
  if (std::find(sliding.begin(), sliding.end(), false) != sliding.end()) s.window_layers = sliding;
}

// The Qwens' sliding window (transformers' Qwen2Config and kin): layer i has it where layer_types
// says "sliding_attention", or without layer_types from max_window_layers (28 by default) on.
void read_qwen_window_layers(const Reader& r, HfGptShape& s) {
  std::vector<bool> sliding(static_cast<std::size_t>(s.layers));
  if (!r.has("layer_types")) {
    std::int64_t full_first = 28;  // transformers' default
    if (r.j.contains("max_window_layers")) {
      const nlohmann::json& m = r.j.at("max_window_layers");
      if (!m.is_number_unsigned())
        throw r.bad("max_window_layers", fmt::format("is {}, expected a layer count ≥ 0", detail::describe_json(m)));
      full_first = static_cast<std::int64_t>(std::min<std::uint64_t>(m.get<std::uint64_t>(), 1u << 30));
    }
    for (std::int64_t i = 0; i < s.layers; ++i) sliding[static_cast<std::size_t>(i)] = i >= full_first;
  }
  read_layer_types(r, s, std::move(sliding));
}

// gpt_oss (transformers' GptOssConfig, its defaults for a missing key): experts of intermediate_size,
// the window (128) in every other layer from the first unless layer_types says otherwise, biases on
// q, k, v and o (attention_bias: the router's and experts' are there regardless, which Tessera's
// add_bias_linear = false cannot leave alone), the clamp transformers fixes at 7.
void read_gpt_oss(const Reader& r, HfGptShape& s) {
  s.experts = r.size("num_local_experts", 128);
  s.experts_per_token = r.size("num_experts_per_tok", r.size("experts_per_token", 4));
  s.expert_ffn = s.ffn;
  r.require("attention_bias", r.flag("attention_bias", true),
            "true (the router and experts have biases, so Tessera's add_bias_linear puts them on attention too)");
  r.require("swiglu_limit", r.number("swiglu_limit", kGptOssSwigluLimit) == kGptOssSwigluLimit,
            fmt::format("{} (transformers' GptOssExperts clamps at it whatever the file says)", kGptOssSwigluLimit));
  s.qkv_bias = s.linear_bias = true;
  std::vector<bool> alternate(static_cast<std::size_t>(s.layers));
  for (std::size_t i = 0; i < alternate.size(); ++i) alternate[i] = i % 2 == 0;
  read_layer_types(r, s, std::move(alternate), 128);
}

// glm4_moe (transformers' Glm4MoeConfig, its defaults for a missing key; the router in HfGptShape).
void read_glm4_moe(const Reader& r, HfGptShape& s) {
  s.qkv_bias = r.flag("attention_bias", false);
  s.use_qk_norm = r.flag("use_qk_norm", false);
  s.rotary_percent = r.number("partial_rotary_factor", 0.5);
  if (!(s.rotary_percent > 0.0 && s.rotary_percent <= 1.0))
    throw r.bad("partial_rotary_factor", fmt::format("is {}, expected in (0, 1]", s.rotary_percent));
  s.experts = r.size("n_routed_experts", 128);
  s.experts_per_token = r.size("num_experts_per_tok", 8);
  s.expert_ffn = r.size("moe_intermediate_size", 1408);
  s.shared_ffn = r.size("n_shared_experts", 1) * s.expert_ffn;
  s.routed_scaling = r.number("routed_scaling_factor", 1.0);
  r.require("norm_topk_prob", r.flag("norm_topk_prob", true),
            "true (Tessera's sigmoid routing renormalises the chosen experts' scores)");
  if (s.experts_per_token < 2)
    throw r.bad("num_experts_per_tok", "is 1: the renormalised weight of a single chosen expert is 1, which Tessera's "
                                       "top-1 sigmoid routing (the score itself) is not");
  const std::int64_t groups = r.size("n_group", 1), group_topk = r.size("topk_group", 1);
  if (groups > 1) {
    if (s.experts % groups != 0 || group_topk > groups)
      throw r.bad("n_group", fmt::format("is {} with {} experts and topk_group {}: expected a divisor of the experts "
                                         "and at least topk_group",
                                         groups, s.experts, group_topk));
    if (s.experts_per_token != 2 * group_topk)
      throw r.bad("topk_group", fmt::format("is {} with num_experts_per_tok {}: transformers scores a group by its two "
                                            "best experts, Tessera by num_experts_per_tok / topk_group of them, so "
                                            "they agree only at num_experts_per_tok = 2 × topk_group",
                                            group_topk, s.experts_per_token));
    s.expert_groups = groups;
    s.group_topk = group_topk;
  }
  std::int64_t dense_first = 1;  // first_k_dense_replace: Glm4MoeConfig's default 1; 0 allowed
  if (r.j.contains("first_k_dense_replace")) {
    const nlohmann::json& v = r.j.at("first_k_dense_replace");
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > static_cast<std::uint64_t>(s.layers))
      throw r.bad("first_k_dense_replace", fmt::format("is {}, expected 0 … {} (the dense layers before the mixtures)",
                                                       detail::describe_json(v), s.layers));
    dense_first = static_cast<std::int64_t>(v.get<std::uint64_t>());
  }
  if (dense_first >= s.layers)
    throw r.bad("first_k_dense_replace", fmt::format("is {}: every one of the {} layers dense, no mixture of experts",
                                                     dense_first, s.layers));
  if (dense_first > 0) {
    s.moe_layers.assign(static_cast<std::size_t>(s.layers), true);
    for (std::int64_t i = 0; i < dense_first; ++i) s.moe_layers[static_cast<std::size_t>(i)] = false;
  }
}

// SmolLM3 (transformers' SmolLM3Config): no_rope_layers, one entry per layer (at least), 1 where the
// layer has rotary positions; without it a NoPE layer every no_rope_layer_interval (4) layers,
// counting from 1. Its sliding window (use_sliding_window) is not read: refused.
void read_smollm3(const Reader& r, HfGptShape& s) {
  r.require("use_sliding_window", !r.flag("use_sliding_window", false), "false (SmolLM3's window is not imported)");
  std::vector<bool> nope(static_cast<std::size_t>(s.layers));
  if (r.has("no_rope_layers")) {
    const nlohmann::json& v = r.j.at("no_rope_layers");
    if (!v.is_array() || v.size() < nope.size())
      throw r.bad("no_rope_layers", fmt::format("is {}, expected a list of {} flags (1: rotary positions, 0: none)",
                                                detail::describe_json(v), s.layers));
    for (std::size_t i = 0; i < nope.size(); ++i) {
      if (v[i] != 0 && v[i] != 1)
        throw r.bad("no_rope_layers", fmt::format("holds {}, expected 1 (rotary positions) or 0 (none)",
                                                  detail::describe_json(v[i])));
      nope[i] = v[i] == 0;
    }
  } else {
    const std::int64_t every = r.size("no_rope_layer_interval", 4);
    for (std::int64_t i = 0; i < s.layers; ++i) nope[static_cast<std::size_t>(i)] = (i + 1) % every == 0;
  }
  if (std::find(nope.begin(), nope.end(), true) != nope.end()) s.nope_layers = nope;
}

void read_starcoder2(const Reader& r, HfGptShape& s) {
  s.norm_epsilon = r.number("norm_epsilon", 1e-5);
  const std::string act = r.text("hidden_act", "gelu_pytorch_tanh");
  if (act != "gelu_pytorch_tanh" && act != "gelu_new" && act != "gelu")
    r.require("hidden_act", false, "the tanh GELU (\"gelu_pytorch_tanh\", \"gelu_new\") or the exact one (\"gelu\")");
  s.exact_gelu = act == "gelu";
  s.linear_bias = r.flag("use_bias", true);
  s.qkv_bias = s.linear_bias;
  s.dropout = r.number("residual_dropout", 0.0);
  if (r.has("embedding_dropout") && r.number("embedding_dropout", 0.0) != s.dropout)
    r.require("embedding_dropout", false,
              fmt::format("one hidden dropout: embedding_dropout equal to residual_dropout ({})", s.dropout));
}

// qwen2_moe's and qwen3_moe's experts, with transformers' defaults for a missing key.
void read_qwen_moe(const Reader& r, HfGptShape& s) {
  const bool qwen2 = s.architecture == "qwen2_moe";
  s.experts = r.size("num_experts", qwen2 ? 60 : 128);
  s.experts_per_token = r.size("num_experts_per_tok", qwen2 ? 4 : 8);
  s.expert_ffn = r.size("moe_intermediate_size", qwen2 ? 1408 : 768);
  s.norm_topk_prob = r.flag("norm_topk_prob", false);
  if (qwen2) s.shared_ffn = r.size("shared_expert_intermediate_size", 5632);
  // transformers' rule: layer i is sparse unless in mlp_only_layers, and only if (i + 1) % step == 0.
  const std::int64_t step = r.size("decoder_sparse_step", 1);
  std::vector<bool> sparse(static_cast<std::size_t>(s.layers));
  for (std::int64_t i = 0; i < s.layers; ++i) sparse[static_cast<std::size_t>(i)] = (i + 1) % step == 0;
  if (r.has("mlp_only_layers")) {
    const nlohmann::json& v = r.j.at("mlp_only_layers");
    if (!v.is_array()) throw r.bad("mlp_only_layers", fmt::format("is {}, expected a list of layer numbers",
                                                                  detail::describe_json(v)));
    for (const nlohmann::json& i : v) {
      if (!i.is_number_unsigned() || i.get<std::uint64_t>() >= static_cast<std::uint64_t>(s.layers))
        throw r.bad("mlp_only_layers", fmt::format("holds {}, expected layer numbers 0 … {}", detail::describe_json(i),
                                                   s.layers - 1));
      sparse[i.get<std::size_t>()] = false;
    }
  }
  if (std::find(sparse.begin(), sparse.end(), false) != sparse.end()) s.moe_layers = sparse;
}

}  // namespace

HfGptShape parse_hf_config(const std::string& text, const std::string& path) {
  const nlohmann::json j = detail::parse_untrusted_json(text, path);
  if (!j.is_object()) throw FormatError(fmt::format("{}: not a JSON object", path));
  const Reader r{j, path};
  HfGptShape s;
  s.architecture = r.text("model_type", "");
  if (s.architecture.empty())
    throw r.bad("model_type", "is missing: import reads gpt2, gpt_bigcode, llama, mistral, qwen2, qwen3, phi3, starcoder2, mixtral, "
                              "qwen2_moe, qwen3_moe, gpt_oss, glm4_moe and smollm3 models");
  if (s.architecture != "gpt2" && s.architecture != "gpt_bigcode" && !s.llama())
    throw FormatError(fmt::format("{}: 'model_type' {} is not an architecture import reads (gpt2, gpt_bigcode, llama, "
                                  "mistral, qwen2, qwen3, phi3, starcoder2, mixtral, qwen2_moe, qwen3_moe, gpt_oss, "
                                  "glm4_moe, smollm3)",
                                  path, quote_untrusted(s.architecture)));
  if (s.llama()) {
    s.hidden = r.size("hidden_size");
    s.heads = r.size("num_attention_heads");
    s.layers = r.size("num_hidden_layers");
    s.ffn = r.size("intermediate_size");
    s.groups = r.size("num_key_value_heads", s.heads);
    // gpt_oss's defaults are GptOssConfig's (131072 positions, eps 1e-5, theta 150000).
    s.positions = r.size("max_position_embeddings", s.gpt_oss() ? 131072 : 2048);
    s.norm_epsilon = r.number("rms_norm_eps", s.gpt_oss() ? 1e-5 : 1e-6);
    s.rotary_base = r.number("rope_theta", s.gpt_oss() ? 150000.0 : 10000.0);
    s.tied = r.flag("tie_word_embeddings", false);
    s.attention_dropout = r.number("attention_dropout", 0.0);
    if (!s.starcoder2()) r.require("hidden_act", r.text("hidden_act", "silu") == "silu", "\"silu\" (SwiGLU)");
    if (r.has("rope_scaling")) read_rope_scaling(r, s, "rope_scaling");
    if (r.has("rope_parameters")) read_rope_parameters(r, s);
    if (s.gpt_oss() && !j.contains("rope_scaling") && !j.contains("rope_parameters")) {
      // GptOssConfig's default rope_scaling (an explicit null is plain rope).
      const nlohmann::json yarn = {{"rope_type", "yarn"}, {"factor", 32.0}, {"beta_fast", 32.0}, {"beta_slow", 1.0},
                                   {"truncate", false}, {"original_max_position_embeddings", 4096}};
      read_yarn(r, yarn, s, "rope_scaling");
    }
    if (r.has("attention_bias") && !s.gpt_oss() && !s.glm4_moe())
      r.require("attention_bias", !r.flag("attention_bias", false), "false");
    if (r.has("mlp_bias")) r.require("mlp_bias", !r.flag("mlp_bias", false), "false");
    s.qkv_bias = s.architecture == "qwen2" || (s.architecture == "qwen2_moe" && r.flag("qkv_bias", true));
    if (s.starcoder2()) read_starcoder2(r, s);
    if (s.phi3()) {
      s.rotary_percent = r.number("partial_rotary_factor", 1.0);
      if (!(s.rotary_percent > 0.0 && s.rotary_percent <= 1.0))
        throw r.bad("partial_rotary_factor", fmt::format("is {}, expected in (0, 1]", s.rotary_percent));
      s.dropout = r.number("resid_pdrop", 0.0);
      if (r.has("embd_pdrop") && r.number("embd_pdrop", 0.0) != s.dropout)
        r.require("embd_pdrop", false, fmt::format("one hidden dropout: embd_pdrop equal to resid_pdrop ({})", s.dropout));
    }
    // A sliding window shorter than the context is Tessera's window_size; a longer one changes
    // nothing. The Qwens have one only with use_sliding_window, in the layers their layer_types pick.
    if ((s.architecture == "mistral" || s.mixtral() || s.phi3() || s.starcoder2()) && r.has("sliding_window") &&
        r.size("sliding_window") < s.positions)
      s.sliding_window = r.size("sliding_window");
    if (s.qwen() && r.flag("use_sliding_window", false) && r.has("sliding_window")) read_qwen_window_layers(r, s);
    // router_aux_loss_coef is training's, not the model's: not carried (docs/checkpoints.md).
    if (s.mixtral()) {
      s.experts = r.size("num_local_experts");
      s.experts_per_token = r.size("num_experts_per_tok", 2);
      s.expert_ffn = s.ffn;
      if (r.has("router_jitter_noise"))
        r.require("router_jitter_noise", r.number("router_jitter_noise", 0.0) == 0.0, "0 (no router noise)");
    }
    if (s.qwen_moe()) read_qwen_moe(r, s);
    if (s.gpt_oss()) read_gpt_oss(r, s);
    if (s.smollm3()) read_smollm3(r, s);
    if (s.glm4_moe()) read_glm4_moe(r, s);
    if (s.moe() && s.experts_per_token > s.experts)
      throw r.bad("num_experts_per_tok", fmt::format("is {}, more than the {} experts ({})", s.experts_per_token,
                                                     s.experts,
                                                     s.qwen_moe()   ? "num_experts"
                                                     : s.glm4_moe() ? "n_routed_experts"
                                                                    : "num_local_experts"));
    // A head_dim other than hidden_size / num_attention_heads: Tessera's kv_channels (qwen3's default
    // is 128, gpt_oss's 64).
    if (r.has("head_dim") || s.architecture == "qwen3" || s.gpt_oss()) {
      const std::int64_t head_dim = r.size("head_dim", s.gpt_oss() ? 64 : 128);
      if (head_dim * s.heads != s.hidden) s.kv_channels = head_dim;
    }
  } else {
    const bool bigcode = s.architecture == "gpt_bigcode";
    s.hidden = r.size("n_embd");
    s.heads = r.size("n_head");
    s.layers = r.size("n_layer");
    s.ffn = r.size("n_inner", 4 * s.hidden);
    s.positions = r.size("n_positions");
    s.groups = bigcode && r.flag("multi_query", true) ? 1 : s.heads;
    s.norm_epsilon = r.number("layer_norm_epsilon", 1e-5);
    s.dropout = r.number("resid_pdrop", 0.0);
    s.attention_dropout = r.number("attn_pdrop", 0.0);
    s.tied = r.flag("tie_word_embeddings", true);
    const std::string act = r.text("activation_function", bigcode ? "gelu_pytorch_tanh" : "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu")
      r.require("activation_function", false,
                "the tanh GELU (\"gelu_new\", \"gelu_pytorch_tanh\") or the exact one (\"gelu\")");
    s.exact_gelu = act == "gelu";
    if (r.has("scale_attn_weights")) r.require("scale_attn_weights", r.flag("scale_attn_weights", true), "true");
    if (r.has("scale_attn_by_inverse_layer_idx"))
      r.require("scale_attn_by_inverse_layer_idx", !r.flag("scale_attn_by_inverse_layer_idx", false), "false");
  }
  s.vocab = r.size("vocab_size");
  s.init_std = r.number("initializer_range", 0.02);
  if (s.kv_channels == 0 && s.hidden % s.heads != 0)
    throw FormatError(fmt::format("{}: hidden size {} is not a multiple of the {} attention heads{}", path, s.hidden,
                                  s.heads, s.llama() ? " (and no head_dim says how wide they are)" : ""));
  if (s.heads % s.groups != 0)
    throw FormatError(fmt::format("{}: {} attention heads are not a multiple of the {} key/value heads", path, s.heads,
                                  s.groups));
  if (s.dropout >= 0.99) throw r.bad("resid_pdrop", fmt::format("is {}, expected < 0.99", s.dropout));
  if (s.attention_dropout < 0 || s.attention_dropout >= 0.99)
    throw r.bad(s.llama() ? "attention_dropout" : "attn_pdrop", fmt::format("is {}, expected in [0, 0.99)", s.attention_dropout));
  s.bos = r.token("bos_token_id");
  s.eos = r.token("eos_token_id");
  return s;
}

std::string tessera_model_toml(const HfGptShape& s) {
  std::string t = "[model]\nplugin = \"gpt\"\n";
  t += fmt::format("num_layers = {}\nhidden_size = {}\nnum_attention_heads = {}\nnum_query_groups = {}\n", s.layers,
                   s.hidden, s.heads, s.groups);
  t += fmt::format("ffn_hidden_size = {}\nseq_length = {}\nmax_position_embeddings = {}\n", s.ffn, s.positions,
                   s.positions);
  t += fmt::format("init_method_std = {}\nhidden_dropout = {}\nattention_dropout = {}\n", toml_float(s.init_std),
                   toml_float(s.dropout), toml_float(s.attention_dropout));
  if (s.kv_channels > 0) t += fmt::format("kv_channels = {}\n", s.kv_channels);
  const char* rotary = s.yarn.factor > 0.0 ? "yarn" : "rope";
  if (s.starcoder2()) {  // rope with LayerNorm, a GELU MLP and biases (use_bias)
    t += fmt::format("position_embedding_type = \"{}\"\nrotary_base = {}\nlayernorm_epsilon = {}\n", rotary,
                     toml_float(s.rotary_base), toml_float(s.norm_epsilon));
    if (!s.linear_bias) t += "add_bias_linear = false\n";
    if (s.exact_gelu) t += "bias_gelu_fusion = false\n";
  } else if (s.gpt_oss()) {  // biases everywhere (add_bias_linear's default), sinks, the experts' unit
    t += fmt::format("position_embedding_type = \"{}\"\nrotary_base = {}\nnormalization = \"RMSNorm\"\n"
                     "norm_epsilon = {}\nquick_geglu = true\nactivation_func_clamp_value = {}\n"
                     "glu_linear_offset = 1.0\nsoftmax_type = \"learnable\"\n",
                     rotary, toml_float(s.rotary_base), toml_float(s.norm_epsilon), toml_float(kGptOssSwigluLimit));
  } else if (s.llama()) {
    t += fmt::format("position_embedding_type = \"{}\"\nrotary_base = {}\nnormalization = \"RMSNorm\"\n"
                     "norm_epsilon = {}\nswiglu = true\nadd_bias_linear = false\n",
                     rotary, toml_float(s.rotary_base), toml_float(s.norm_epsilon));
  }
  if (s.llama()) {
    if (s.rope_scaling_factor > 0.0)
      t += fmt::format("use_rope_scaling = true\nrope_scaling_factor = {}\n", toml_float(s.rope_scaling_factor));
    if (s.rope_interpolation != 1.0)
      t += fmt::format("rotary_seq_len_interpolation_factor = {}\n", toml_float(s.rope_interpolation));
    if (s.yarn.factor > 0.0) {
      const RopeYarn& y = s.yarn;
      t += fmt::format("yarn_rotary_scaling_factor = {}\n"
                       "yarn_original_max_position_embeddings = {}\nyarn_beta_fast = {}\nyarn_beta_slow = {}\n"
                       "yarn_mscale = {}\nyarn_mscale_all_dim = {}\nyarn_correction_range_round_to_int = {}\n",
                       toml_float(y.factor), static_cast<std::int64_t>(y.original_context), toml_float(y.beta_fast),
                       toml_float(y.beta_slow), toml_float(y.mscale), toml_float(y.mscale_all_dim), y.round_to_int);
    }
    if (s.qkv_bias && !s.starcoder2() && !s.gpt_oss()) t += "add_qkv_bias = true\n";  // qwen2's biases on q, k and v
    if (s.has_qk_norm()) t += "qk_layernorm = true\n";  // qwen3's (glm4_moe's) RMSNorms over each head of q and k
    if (s.rotary_percent != 1.0) t += fmt::format("rotary_percent = {}\n", toml_float(s.rotary_percent));
    if (s.sliding_window > 0) t += fmt::format("window_size = [{}, 0]\n", s.sliding_window - 1);
    if (!s.nope_layers.empty()) {
      std::string flags;
      for (bool nope : s.nope_layers) flags += fmt::format("{}{}", flags.empty() ? "" : ", ", nope ? 1 : 0);
      t += fmt::format("no_rope_freq = [{}]\n", flags);
    }
    if (!s.window_layers.empty()) {
      std::string flags;
      for (bool window : s.window_layers) flags += fmt::format("{}{}", flags.empty() ? "" : ", ", window ? 1 : 0);
      t += fmt::format("window_attn_skip_freq = [{}]\n", flags);
    }
    if (s.moe())
      t += fmt::format("num_experts = {}\nmoe_router_topk = {}\nmoe_ffn_hidden_size = {}\n", s.experts,
                       s.experts_per_token, s.expert_ffn);
    if (s.moe() && !s.norm_topk_prob) t += "moe_router_pre_softmax = true\n";
    if (s.shared_ffn > 0)
      t += fmt::format("moe_shared_expert_intermediate_size = {}\nmoe_shared_expert_gate = {}\n", s.shared_ffn,
                       !s.glm4_moe());
    if (s.glm4_moe()) {  // sigmoid scores, the expert bias (e_score_correction_bias), groups, scaling
      t += "moe_router_score_function = \"sigmoid\"\nmoe_router_enable_expert_bias = true\n";
      if (s.routed_scaling != 1.0)
        t += fmt::format("moe_router_topk_scaling_factor = {}\n", toml_float(s.routed_scaling));
      if (s.expert_groups > 0)
        t += fmt::format("moe_router_num_groups = {}\nmoe_router_group_topk = {}\n", s.expert_groups, s.group_topk);
    }
    if (!s.moe_layers.empty()) {
      std::string flags;
      for (bool sparse : s.moe_layers) flags += fmt::format("{}{}", flags.empty() ? "" : ", ", sparse ? 1 : 0);
      t += fmt::format("moe_layer_freq = [{}]\n", flags);
    }
  } else {
    t += fmt::format("layernorm_epsilon = {}\n", toml_float(s.norm_epsilon));
    if (s.exact_gelu) t += "bias_gelu_fusion = false\n";  // Megatron-LM's F.gelu: the exact form
  }
  if (!s.tied) t += "untie_embeddings_and_output_weights = true\n";
  return t;
}

}  // namespace tessera
