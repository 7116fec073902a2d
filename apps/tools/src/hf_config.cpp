#include "tessera/tools/hf_config.hpp"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/error.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"
#include "tessera/rope_frequency.hpp"

namespace tessera {

namespace {

// A float setting as its shortest decimal (1e-5f → 1e-05, not 9.99999974738e-06).
double tidy(float f) { return std::stod(fmt::format("{}", f)); }

std::string toml_float(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

HfGptShape hf_shape_for_export(const TransformerOptions& o, const std::string& requested, const std::string& source) {
  const bool llama_style = o.rope || o.rms_norm || o.swiglu;
  HfGptShape s;
  s.architecture = !requested.empty() ? requested
                   : llama_style      ? (o.moe.router.experts > 0 ? "mixtral" : o.add_qkv_bias ? "qwen2" : "llama")
                   : o.num_query_groups == o.num_attention_heads ? "gpt2"
                                                                 : "gpt_bigcode";
  if (s.architecture != "gpt2" && s.architecture != "gpt_bigcode" && !s.llama())
    throw ConfigError(fmt::format("--architecture {}: export writes gpt2, gpt_bigcode, llama, mistral, qwen2 or mixtral",
                                  quote_untrusted(s.architecture)));
  const auto refuse = [&](const char* key, const std::string& why) {
    return ConfigError(fmt::format("model.{} in {}: {}, so this model cannot be exported as Hugging Face's {}", key,
                                   source, why, s.architecture));
  };
  if (o.qk_layernorm) throw refuse("qk_layernorm", "it has no norms on q and k");
  if (o.squared_relu) throw refuse("squared_relu", "its MLP activation is not squared ReLU");
  if (o.moe.router.experts > 0 && !s.mixtral())
    throw refuse("num_experts", "its MLPs are dense (no mixture of experts; mixtral has them)");
  if (s.mixtral()) {
    if (o.moe.router.experts == 0)
      throw refuse("num_experts", "its MLPs are mixtures of experts, this model's dense (llama has dense MLPs)");
    if (o.moe.router.pre_softmax)
      throw refuse("moe_router_pre_softmax", "its routing weights are renormalised over the chosen experts");
    if (o.moe.router.sigmoid)
      throw refuse("moe_router_score_function", "its router's scores are a softmax");
    if (o.moe.router.sinkhorn)
      throw refuse("moe_router_load_balancing_type", "its router weighs the chosen experts by a renormalised softmax, "
                                                     "not Sinkhorn routing's scores");
    if (o.moe.router.expert_bias)
      throw refuse("moe_router_enable_expert_bias", "its router has no expert bias");
    if (o.moe.router.num_groups > 0)
      throw refuse("moe_router_num_groups", "its router chooses among all experts");
    if (!o.moe_layer_pattern.empty())
      throw refuse("moe_layer_freq", "every one of its layers is a mixture of experts");
    if (o.moe.shared_ffn_hidden > 0)
      throw refuse("moe_shared_expert_intermediate_size", "it has no shared expert");
  }
  if (o.residual_post_norm)
    throw refuse("apply_residual_connection_post_layernorm", "its residuals are the sublayers' inputs, not their norms'");
  if (s.llama()) {
    if (!o.rope)
      throw refuse("position_embedding_type", fmt::format("llama has rotary positions (\"rope\"), this model {}",
                                                          o.learned_positions ? "a learned table" : "none"));
    if (o.rotary_percent != 1.0)
      throw refuse("rotary_percent", fmt::format("llama rotates every channel of a head (1.0), this model {}",
                                                 o.rotary_percent));
    if (!o.rms_norm) throw refuse("normalization", "llama has \"RMSNorm\", this model LayerNorm");
    if (!o.swiglu) throw refuse("swiglu", "llama's MLP is SwiGLU (swiglu = true), this model's GELU");
    if (o.add_bias_linear) throw refuse("add_bias_linear", "llama's linear layers have no biases (add_bias_linear = false)");
    if (o.add_qkv_bias && !s.qkv_bias())
      throw refuse("add_qkv_bias", fmt::format("{}'s attention has no biases (qwen2 has them on q, k and v: "
                                               "--architecture qwen2)",
                                               s.architecture));
    if (!o.add_qkv_bias && s.qkv_bias())
      throw refuse("add_qkv_bias", "qwen2's q, k and v projections have biases (add_qkv_bias = true)");
    if (s.qkv_bias() && o.kv_channels * o.num_attention_heads != o.hidden_size)
      throw refuse("kv_channels", "qwen2's heads have hidden_size / num_attention_heads channels");
    if (o.rope_scaling_factor > 0.0 && o.rotary_interpolation != 1.0)
      throw refuse("rotary_seq_len_interpolation_factor",
                   "llama's rope_scaling is one kind, Llama 3.1's (use_rope_scaling) or linear, not both");
    if (o.kv_channels * o.num_attention_heads != o.hidden_size) s.kv_channels = o.kv_channels;  // HF's head_dim
  } else {
    if (o.rope) throw refuse("position_embedding_type", "it has learned positions, this model rotary ones (use llama)");
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
  s.layers = o.num_layers;
  s.hidden = o.hidden_size;
  s.heads = o.num_attention_heads;
  s.groups = o.num_query_groups;
  s.ffn = s.mixtral() ? o.moe.ffn_hidden : o.ffn_hidden_size;
  s.experts = o.moe.router.experts;
  s.experts_per_token = o.moe.router.topk;
  s.vocab = o.vocab_size;
  s.positions = o.max_position_embeddings;
  s.norm_epsilon = tidy(o.layernorm_epsilon);
  s.init_std = tidy(o.init_method_std);
  s.dropout = tidy(o.hidden_dropout);
  s.attention_dropout = tidy(o.attention_dropout);
  s.rotary_base = o.rotary_base;
  s.rotary_interleaved = o.rotary_interleaved;
  s.rope_scaling_factor = o.rope_scaling_factor;
  s.rope_interpolation = o.rotary_interpolation;
  s.layernorm_1p = o.apply_layernorm_1p;
  s.exact_gelu = o.exact_gelu;
  s.tied = !o.untie_embeddings_and_output_weights;
  return s;
}

std::string hf_config_json(const HfGptShape& s, const std::map<std::string, std::string>& extra) {
  nlohmann::ordered_json j;
  if (s.llama()) {
    j["architectures"] = {s.architecture == "qwen2"     ? "Qwen2ForCausalLM"
                          : s.architecture == "mistral" ? "MistralForCausalLM"
                          : s.mixtral()                 ? "MixtralForCausalLM"
                                                        : "LlamaForCausalLM"};
    j["model_type"] = s.architecture;
    j["vocab_size"] = s.vocab;
    j["hidden_size"] = s.hidden;
    j["intermediate_size"] = s.ffn;
    j["num_hidden_layers"] = s.layers;
    j["num_attention_heads"] = s.heads;
    j["num_key_value_heads"] = s.groups;
    j["head_dim"] = s.head_dim();
    j["max_position_embeddings"] = s.positions;
    j["rms_norm_eps"] = s.norm_epsilon;
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
    } else {
      j["rope_scaling"] = nullptr;
    }
    j["hidden_act"] = "silu";
    j["attention_dropout"] = s.attention_dropout;
    if (s.architecture == "llama") {
      j["attention_bias"] = false;
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
    } else {  // every position attends to all before it: no sliding window
      j["sliding_window"] = nullptr;
      if (s.architecture == "qwen2") j["use_sliding_window"] = false;
    }
    if (s.mixtral()) {
      j["num_local_experts"] = s.experts;
      j["num_experts_per_tok"] = s.experts_per_token;
      j["router_jitter_noise"] = 0.0;
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
  j["torch_dtype"] = "float32";
  for (const auto& [key, value] : extra) j[key] = nlohmann::ordered_json::parse(value);
  return j.dump(2) + "\n";
}

namespace {

struct Reader {
  const nlohmann::json& j;
  const std::string& path;
  FormatError bad(const std::string& key, const std::string& why) const {
    return FormatError(fmt::format("{}: '{}' {}", path, key, why));
  }
  bool has(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }
  std::int64_t size(const std::string& key, std::int64_t fallback = -1) const {
    if (!has(key)) {
      if (fallback >= 0) return fallback;
      throw bad(key, "is missing");
    }
    const auto& v = j.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() < 1 || v.get<std::uint64_t>() > (1ull << 40))
      throw bad(key, fmt::format("is {}, expected a positive integer", detail::describe_json(v)));
    return v.get<std::int64_t>();
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j.at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      throw bad(key, fmt::format("is {}, expected a non-negative number", detail::describe_json(v)));
    return v.get<double>();
  }
  bool flag(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_boolean()) throw bad(key, fmt::format("is {}, expected true or false", detail::describe_json(j.at(key))));
    return j.at(key).get<bool>();
  }
  std::string text(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_string()) throw bad(key, fmt::format("is {}, expected a string", detail::describe_json(j.at(key))));
    return j.at(key).get<std::string>();
  }
  // A setting Tessera has one value of.
  void require(const std::string& key, bool ok, const std::string& expected) const {
    if (!ok)
      throw bad(key, fmt::format("is {}: Tessera's GPT has {} only", detail::describe_json(j.at(key)), expected));
  }
  std::int64_t token(const std::string& key) const {
    return has(key) && j.at(key).is_number_unsigned() ? j.at(key).get<std::int64_t>() : -1;
  }
};

// llama's rope_scaling into `s`: Llama 3.1's, with the constants Megatron-Core's apply_scaling fixes
// (tessera/rope_frequency.hpp), or linear interpolation (positions divided by the factor). Any other
// scaling has no Tessera equivalent.
void read_rope_scaling(const Reader& r, HfGptShape& s) {
  using C = RopeScalingConstants;
  const nlohmann::json& v = r.j.at("rope_scaling");
  const auto refuse = [&] {
    return r.bad("rope_scaling",
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
  if (type != "llama3" || !(factor >= 1.0 && factor <= 1e6) || number("low_freq_factor") != C::kLowFreqFactor ||
      number("high_freq_factor") != C::kHighFreqFactor ||
      number("original_max_position_embeddings") != C::kOriginalContext)
    throw refuse();
  s.rope_scaling_factor = factor;
}

}  // namespace

HfGptShape parse_hf_config(const std::string& text, const std::string& path) {
  const nlohmann::json j = detail::parse_untrusted_json(text, path);
  if (!j.is_object()) throw FormatError(fmt::format("{}: not a JSON object", path));
  const Reader r{j, path};
  HfGptShape s;
  s.architecture = r.text("model_type", "");
  if (s.architecture.empty())
    throw r.bad("model_type", "is missing: import reads gpt2, gpt_bigcode, llama, mistral, qwen2 and mixtral models");
  if (s.architecture != "gpt2" && s.architecture != "gpt_bigcode" && !s.llama())
    throw FormatError(fmt::format("{}: 'model_type' {} is not an architecture import reads (gpt2, gpt_bigcode, llama, "
                                  "mistral, qwen2, mixtral)",
                                  path, quote_untrusted(s.architecture)));
  if (s.llama()) {
    s.hidden = r.size("hidden_size");
    s.heads = r.size("num_attention_heads");
    s.layers = r.size("num_hidden_layers");
    s.ffn = r.size("intermediate_size");
    s.groups = r.size("num_key_value_heads", s.heads);
    s.positions = r.size("max_position_embeddings", 2048);
    s.norm_epsilon = r.number("rms_norm_eps", 1e-6);
    s.rotary_base = r.number("rope_theta", 10000.0);
    s.tied = r.flag("tie_word_embeddings", false);
    s.attention_dropout = r.number("attention_dropout", 0.0);
    r.require("hidden_act", r.text("hidden_act", "silu") == "silu", "\"silu\" (SwiGLU)");
    if (r.has("rope_scaling")) read_rope_scaling(r, s);
    if (r.has("attention_bias")) r.require("attention_bias", !r.flag("attention_bias", false), "false");
    if (r.has("mlp_bias")) r.require("mlp_bias", !r.flag("mlp_bias", false), "false");
    // Mistral's and Qwen2's sliding-window attention: Tessera attends to every earlier position, the
    // same only where the window covers the whole context.
    if (s.architecture == "qwen2" && r.flag("use_sliding_window", false))
      r.require("use_sliding_window", false, "false (full causal attention)");
    if ((s.architecture == "mistral" || s.mixtral()) && r.has("sliding_window") && r.size("sliding_window") < s.positions)
      r.require("sliding_window", false,
                fmt::format("null or at least max_position_embeddings ({}): full causal attention", s.positions));
    if (s.mixtral()) {  // router_aux_loss_coef is training's, not the model's: not carried (docs/checkpoints.md)
      s.experts = r.size("num_local_experts");
      s.experts_per_token = r.size("num_experts_per_tok", 2);
      if (s.experts_per_token > s.experts)
        throw r.bad("num_experts_per_tok", fmt::format("is {}, more than the {} experts (num_local_experts)",
                                                       s.experts_per_token, s.experts));
      if (r.has("router_jitter_noise"))
        r.require("router_jitter_noise", r.number("router_jitter_noise", 0.0) == 0.0, "0 (no router noise)");
    }
    // A head_dim other than hidden_size / num_attention_heads: Tessera's kv_channels.
    if (r.has("head_dim") && r.size("head_dim") * s.heads != s.hidden) s.kv_channels = r.size("head_dim");
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
  if (s.llama()) {
    t += fmt::format("position_embedding_type = \"rope\"\nrotary_base = {}\nnormalization = \"RMSNorm\"\n"
                     "norm_epsilon = {}\nswiglu = true\nadd_bias_linear = false\n",
                     toml_float(s.rotary_base), toml_float(s.norm_epsilon));
    if (s.rope_scaling_factor > 0.0)
      t += fmt::format("use_rope_scaling = true\nrope_scaling_factor = {}\n", toml_float(s.rope_scaling_factor));
    if (s.rope_interpolation != 1.0)
      t += fmt::format("rotary_seq_len_interpolation_factor = {}\n", toml_float(s.rope_interpolation));
    if (s.qkv_bias()) t += "add_qkv_bias = true\n";  // qwen2's biases on q, k and v
    if (s.mixtral())
      t += fmt::format("num_experts = {}\nmoe_router_topk = {}\nmoe_ffn_hidden_size = {}\n", s.experts,
                       s.experts_per_token, s.ffn);
  } else {
    t += fmt::format("layernorm_epsilon = {}\n", toml_float(s.norm_epsilon));
    if (s.exact_gelu) t += "bias_gelu_fusion = false\n";  // Megatron-LM's F.gelu: the exact form
  }
  if (!s.tied) t += "untie_embeddings_and_output_weights = true\n";
  return t;
}

}  // namespace tessera
