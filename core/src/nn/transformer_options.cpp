#include "tessera/nn/transformer_options.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/pipeline_layers.hpp"

namespace tessera {

void read_residual_and_gelu(const ConfigSection& s, TransformerOptions& o) {
  o.residual_post_norm = s.get_bool("apply_residual_connection_post_layernorm", false);
  o.openai_gelu = s.get_bool("openai_gelu", false);
  o.exact_gelu = !s.get_bool("bias_gelu_fusion", true) && !o.openai_gelu;
}

TransformerOptions read_transformer_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                                            const ParallelSizes& sizes, const std::string& model) {
  const std::int64_t tp = sizes.tp;
  const bool sequence_parallel = sizes.sequence_parallel;
  TransformerOptions o;
  o.num_layers = s.get_int("num_layers", 2, 1, 100000);
  o.hidden_size = s.get_int("hidden_size", 64, 1, 1 << 20);
  o.num_attention_heads = s.get_int("num_attention_heads", 4, 1, 1 << 16);
  // BigCode's Megatron-LM fork (StarCoder's scripts): --attention-head-type multiquery | multihead,
  // the two ends of num_query_groups.
  if (s.has("attention_head_type")) {
    if (s.has("num_query_groups"))
      throw ConfigError(fmt::format("model.attention_head_type (in {}) and model.num_query_groups (in {}) both set the "
                                    "key/value heads: give one",
                                    s.origin("attention_head_type"), s.origin("num_query_groups")));
    o.num_query_groups =
        s.get_choice("attention_head_type", "multihead", {"multihead", "multiquery"}) == "multiquery"
            ? 1
            : o.num_attention_heads;
  } else {
    o.num_query_groups = s.get_int("num_query_groups", o.num_attention_heads, 1, o.num_attention_heads);
  }
  o.ffn_hidden_size = s.get_int("ffn_hidden_size", 4 * o.hidden_size, 1, 1 << 24);
  o.seq_length = s.get_int("seq_length", 64, 1, 1 << 20);
  o.max_position_embeddings = s.get_int("max_position_embeddings", o.seq_length, o.seq_length, 1 << 20);
  o.hidden_dropout = static_cast<float>(s.get_float("hidden_dropout", 0.0, 0.0, 0.99));
  o.attention_dropout = static_cast<float>(s.get_float("attention_dropout", 0.0, 0.0, 0.99));
  o.init_method_std = static_cast<float>(s.get_float("init_method_std", 0.02, 0.0, 10.0));
  o.layernorm_epsilon = static_cast<float>(s.get_float("layernorm_epsilon", 1e-5, 0.0, 1.0));
  const std::int64_t divisible_by = s.get_int("make_vocab_size_divisible_by", 128, 1, 1 << 20);
  o.kv_channels = read_kv_channels(s, o.hidden_size, o.num_attention_heads);
  if (o.num_attention_heads % o.num_query_groups != 0)
    throw ConfigError(fmt::format("model.num_attention_heads ({}) in {} must be a multiple of model.num_query_groups ({}); "
                                  "1 gives multi-query attention, num_attention_heads gives multi-head",
                                  o.num_attention_heads, s.origin("num_attention_heads"), o.num_query_groups));
  const auto require_tp_divides = [&](const char* key, std::int64_t value) {
    if (value % tp != 0)
      throw ConfigError(fmt::format("model.{} ({}) in {} must be a multiple of parallel.tensor_model_parallel_size ({})",
                                    key, value, s.origin(key), tp));
  };
  require_tp_divides("hidden_size", o.hidden_size);
  require_tp_divides("num_attention_heads", o.num_attention_heads);
  require_tp_divides("ffn_hidden_size", o.ffn_hidden_size);
  if (o.num_query_groups >= tp ? o.num_query_groups % tp != 0 : o.num_query_groups != 1)
    throw ConfigError(fmt::format("model.num_query_groups ({}) in {} must be a multiple of "
                                  "parallel.tensor_model_parallel_size ({}), or 1 (multi-query attention: the "
                                  "single K/V head is replicated on every tensor-parallel rank)",
                                  o.num_query_groups, s.origin("num_query_groups"), tp));
  check_pipeline_layers(o.num_layers, sizes, s.origin("num_layers"));
  // Sequence parallelism splits each microbatch's B·T token rows evenly over tp; like Megatron-LM,
  // require tp to divide the sequence length, which covers every micro batch size.
  if (sequence_parallel && o.seq_length % tp != 0)
    throw ConfigError(fmt::format("model.seq_length ({}) in {} must be a multiple of parallel.tensor_model_parallel_size "
                                  "({}) with parallel.sequence_parallel = true: each tensor-parallel rank holds an "
                                  "equal share of every microbatch's tokens",
                                  o.seq_length, s.origin("seq_length"), tp));
  // Context parallelism cuts each sequence into 2·cp equal chunks, and sequence parallelism then
  // splits a rank's share of every microbatch's tokens over tp (Megatron-Core checks the same).
  if (sizes.cp > 1 && o.seq_length % (2 * sizes.cp) != 0)
    throw ConfigError(fmt::format("model.seq_length ({}) in {} must be a multiple of 2 × parallel.context_parallel_size "
                                  "({}): each context-parallel rank holds 2 of the 2·cp equal chunks of every sequence",
                                  o.seq_length, s.origin("seq_length"), sizes.cp));
  if (sizes.cp > 1 && sequence_parallel && (o.seq_length / sizes.cp) % tp != 0)
    throw ConfigError(fmt::format("model.seq_length ({}) in {} / parallel.context_parallel_size ({}) must be a multiple "
                                  "of parallel.tensor_model_parallel_size ({}) with parallel.sequence_parallel = true",
                                  o.seq_length, s.origin("seq_length"), sizes.cp, tp));
  // Full recompute's groups must fit every stage's model chunks (with uneven stages, each size; with
  // the embedding or loss counted, the stage's largest chunk: its one-layer-shorter first or last
  // chunk ends on a shorter group, and a chunk without layers recomputes nothing).
  for (int stage = 0; stage < sizes.pp; ++stage) {
    std::int64_t largest_chunk = 0;
    for (int c = 0; c < sizes.vpp; ++c)
      largest_chunk = std::max(largest_chunk, chunk_layers(o.num_layers, sizes, stage, c).count);
    if (largest_chunk > 0) o.recompute = read_recompute_options(s, largest_chunk, tp, sizes.sequence_parallel);
  }
  read_residual_and_gelu(s, o);
  if (vocab_size <= 0) throw ConfigError(model + ": the tokenizer reported an empty vocabulary");
  o.vocab_size = vocab_size;
  // Megatron-LM pads the vocabulary to a multiple of make_vocab_size_divisible_by × tp so that
  // the embedding splits evenly and GEMMs get friendly sizes.
  const std::int64_t multiple = divisible_by * tp;
  o.padded_vocab_size = (o.vocab_size + multiple - 1) / multiple * multiple;
  o.seed = seed;
  return o;
}

std::int64_t read_kv_channels(const ConfigSection& s, std::int64_t hidden_size, std::int64_t num_attention_heads) {
  if (s.has("kv_channels")) return s.get_int("kv_channels", 1, 1, 1 << 16);
  if (hidden_size % num_attention_heads != 0)
    throw ConfigError(fmt::format("model.hidden_size ({}) in {} must be a multiple of model.num_attention_heads ({}), "
                                  "or model.kv_channels set (the channels of each head)",
                                  hidden_size, s.origin("hidden_size"), num_attention_heads));
  return hidden_size / num_attention_heads;
}

std::int64_t TransformerOptions::rotary_dim() const {
  if (!rope) return 0;
  return static_cast<std::int64_t>(static_cast<double>(kv_channels) * rotary_percent);
}

namespace {

// Megatron-Core's YaRN keys (position_embedding_type = "yarn", as gpt-oss's config): only with it.
void read_yarn_options(const ConfigSection& s, bool yarn, RopeYarn& y) {
  static const char* const kKeys[] = {"yarn_rotary_scaling_factor", "yarn_original_max_position_embeddings",
                                      "yarn_beta_fast", "yarn_beta_slow", "yarn_mscale", "yarn_mscale_all_dim",
                                      "yarn_correction_range_round_to_int"};
  if (!yarn) {
    for (const char* key : kKeys)
      if (s.has(key))
        throw ConfigError(fmt::format("model.{} (in {}) is a YaRN setting: it needs model.position_embedding_type = "
                                      "\"yarn\"",
                                      key, s.origin(key)));
    return;
  }
  y.factor = s.get_float("yarn_rotary_scaling_factor", 1.0, 1.0, 1e6);
  y.original_context = static_cast<double>(s.get_int("yarn_original_max_position_embeddings", 4096, 1, 1LL << 40));
  y.beta_fast = s.get_float("yarn_beta_fast", 32.0, 1e-6, 1e6);
  y.beta_slow = s.get_float("yarn_beta_slow", 1.0, 1e-6, 1e6);
  y.mscale = s.get_float("yarn_mscale", 1.0, 0.0, 1e6);
  y.mscale_all_dim = s.get_float("yarn_mscale_all_dim", 0.0, 0.0, 1e6);
  y.round_to_int = s.get_bool("yarn_correction_range_round_to_int", true);
}

// Megatron-Core's gated linear units beyond SwiGLU (mlp.py's glu): quick_geglu (the gate's quick
// GELU; an MLP of ffn_hidden_size 4h unless set, as Megatron-LM's default for any MLP but
// SwiGLU's), activation_func_clamp_value and glu_linear_offset — both only on a gated MLP.
void read_gated_linear_unit(const ConfigSection& s, bool quick_geglu, TransformerOptions& o) {
  if (quick_geglu) {
    o.swiglu = true;
    o.glu.alpha = kQuickGeluAlpha;
  }
  for (const char* key : {"activation_func_clamp_value", "glu_linear_offset"})
    if (s.has(key) && !o.swiglu)
      throw ConfigError(fmt::format("model.{} (in {}) acts on a gated linear unit's halves: it needs model.swiglu or "
                                    "model.quick_geglu = true",
                                    key, s.origin(key)));
  if (s.has("activation_func_clamp_value"))
    o.glu.clamp = static_cast<float>(s.get_float("activation_func_clamp_value", 0.0, 1e-6, 1e30));
  o.glu.linear_offset = static_cast<float>(s.get_float("glu_linear_offset", 0.0, -1e30, 1e30));
}

// The list form of Megatron-Core's per-layer keys (window_attn_skip_freq, no_rope_freq): one flag of
// 0 or 1 per layer; `one` and `zero` say what each means in the error.
std::vector<bool> read_layer_flags(const ConfigSection& s, const std::string& key, std::int64_t layers, const char* one,
                                   const char* zero) {
  const std::vector<std::int64_t> flags = s.get_int_list(key);
  if (static_cast<std::int64_t>(flags.size()) != layers ||
      std::any_of(flags.begin(), flags.end(), [](std::int64_t f) { return f != 0 && f != 1; }))
    throw ConfigError(fmt::format("model.{} (in {}) as an array has one flag per layer: {} values of 1 ({}) or 0 ({})",
                                  key, s.origin(key), layers, one, zero));
  std::vector<bool> out;
  for (std::int64_t f : flags) out.push_back(f == 1);
  return out;
}

// Megatron-Core's no_rope_freq (Llama 4's and SmolLM3's NoPE layers): N, rotary positions skipped in
// every N-th layer counting from 1 (num_layers a multiple of N, as Megatron-Core asserts); or one
// flag per layer, 1 to skip them.
void read_no_rope_freq(const ConfigSection& s, TransformerOptions& o) {
  if (!s.has("no_rope_freq")) return;
  if (!o.rope)
    throw ConfigError(fmt::format("model.no_rope_freq (in {}) picks the layers without rotary positions: it needs "
                                  "model.position_embedding_type = \"rope\" or \"yarn\"",
                                  s.origin("no_rope_freq")));
  const std::size_t L = static_cast<std::size_t>(o.num_layers);
  if (s.is_array("no_rope_freq")) {
    o.nope_layer_pattern = read_layer_flags(s, "no_rope_freq", o.num_layers, "no rotary positions", "rotary positions");
  } else {
    const std::int64_t every = s.get_int("no_rope_freq", 1, 1, std::int64_t{1} << 40);
    if (o.num_layers % every != 0)
      throw ConfigError(fmt::format("model.no_rope_freq = {} (in {}) must divide model.num_layers ({}), as "
                                    "Megatron-Core's; or give one flag per layer",
                                    every, s.origin("no_rope_freq"), o.num_layers));
    for (std::size_t i = 0; i < L; ++i) o.nope_layer_pattern.push_back(static_cast<std::int64_t>(i + 1) % every == 0);
  }
  if (std::none_of(o.nope_layer_pattern.begin(), o.nope_layer_pattern.end(), [](bool b) { return b; }))
    o.nope_layer_pattern.clear();  // rotary positions in every layer
}

}  // namespace

void read_llama_style_options(const ConfigSection& s, TransformerOptions& o, std::int64_t tp) {
  const std::string positions =
      s.get_choice("position_embedding_type", "learned_absolute", {"learned_absolute", "rope", "yarn", "none"});
  o.rope = positions == "rope" || positions == "yarn";
  read_yarn_options(s, positions == "yarn", o.rope_yarn);
  o.learned_positions = positions == "learned_absolute";
  o.rotary_percent = s.get_float("rotary_percent", 1.0);
  if (!(o.rotary_percent > 0.0 && o.rotary_percent <= 1.0))
    throw ConfigError(fmt::format("model.rotary_percent ({}) in {} must be in (0, 1]: the fraction of each head's "
                                  "channels rotary position embeddings rotate",
                                  o.rotary_percent, s.origin("rotary_percent")));
  o.rotary_base = s.get_float("rotary_base", 10000.0, 1e-300, 1e300);
  if (!(o.rotary_base > 1.0))
    throw ConfigError(fmt::format("model.rotary_base ({}) in {} must be > 1", o.rotary_base, s.origin("rotary_base")));
  o.rotary_interleaved = s.get_bool("rotary_interleaved", false);
  if (s.has("window_size")) {  // Megatron-Core's --window-size left,right (causal: right 0)
    const std::vector<std::int64_t> w = s.is_array("window_size") ? s.get_int_list("window_size")
                                                                   : std::vector<std::int64_t>{};
    if (w.size() != 2 || w[0] < 0 || w[1] != 0)
      throw ConfigError(fmt::format("model.window_size in {} is [left, right] with right = 0 (causal attention): query "
                                    "i attends keys i − left … i (Mistral's sliding_window 4096 is [4095, 0])",
                                    s.origin("window_size")));
    o.window_left = w[0];
  }
  using Softmax = AttentionOptions::SoftmaxType;
  const std::string softmax = s.get_choice("softmax_type", "vanilla", {"vanilla", "off-by-one", "learnable"});
  for (Softmax t : {Softmax::vanilla, Softmax::off_by_one, Softmax::learnable})
    if (softmax == softmax_type_name(t)) o.softmax_type = t;
  // Megatron-Core's window_attn_skip_freq: N, every N-th layer (counting from 1) attends every
  // earlier key and the others the window; or one flag per layer, 1 for the window, 0 for all keys.
  if (s.has("window_attn_skip_freq")) {
    if (o.window_left < 0)
      throw ConfigError(fmt::format("model.window_attn_skip_freq (in {}) picks the layers without the sliding window, "
                                    "but there is none: set model.window_size, or drop the key",
                                    s.origin("window_attn_skip_freq")));
    const std::size_t L = static_cast<std::size_t>(o.num_layers);
    if (s.is_array("window_attn_skip_freq")) {
      o.window_layer_pattern =
          read_layer_flags(s, "window_attn_skip_freq", o.num_layers, "sliding window", "every earlier key");
    } else {
      const std::int64_t every = s.get_int("window_attn_skip_freq", 1, 1, std::int64_t{1} << 40);
      for (std::size_t i = 0; i < L; ++i) o.window_layer_pattern.push_back(static_cast<std::int64_t>(i + 1) % every != 0);
    }
    if (std::all_of(o.window_layer_pattern.begin(), o.window_layer_pattern.end(), [](bool b) { return b; }))
      o.window_layer_pattern.clear();  // every layer
  }
  read_no_rope_freq(s, o);
  // Megatron-Core's --use-rope-scaling (Llama 3.1 / 3.2) with --rope-scaling-factor (8 by default).
  const bool scaling = s.get_bool("use_rope_scaling", false);
  if (s.has("rope_scaling_factor") && !scaling)
    throw ConfigError(fmt::format("model.rope_scaling_factor (in {}) applies only with model.use_rope_scaling = true",
                                  s.origin("rope_scaling_factor")));
  if (scaling) {
    if (positions != "rope")
      throw ConfigError(fmt::format("model.use_rope_scaling = true (in {}) scales rotary positions: it needs "
                                    "model.position_embedding_type = \"rope\"",
                                    s.origin("use_rope_scaling")));
    o.rope_scaling_factor = s.get_float("rope_scaling_factor", 8.0, 1.0, 1e6);
  }
  // Megatron-Core's --rotary-seq-len-interpolation-factor: linear position interpolation (positions
  // divided by it), for a model trained on shorter sequences.
  if (s.has("rotary_seq_len_interpolation_factor")) {
    if (positions != "rope")
      throw ConfigError(fmt::format("model.rotary_seq_len_interpolation_factor (in {}) divides rotary positions: it "
                                    "needs model.position_embedding_type = \"rope\"",
                                    s.origin("rotary_seq_len_interpolation_factor")));
    o.rotary_interpolation = s.get_float("rotary_seq_len_interpolation_factor", 1.0, 1e-6, 1e6);
  }
  if (o.rope) {
    const std::int64_t dim = o.rotary_dim();
    if (dim < 2 || dim % 2 != 0)
      throw ConfigError(fmt::format("model.rotary_percent ({}) in {} rotates int({} · {}) = {} channels of each head "
                                    "(kv_channels = {}): that must be an even number ≥ 2",
                                    o.rotary_percent, s.origin("rotary_percent"), o.kv_channels, o.rotary_percent, dim,
                                    o.kv_channels));
  }
  o.rms_norm = s.get_choice("normalization", "LayerNorm", {"LayerNorm", "RMSNorm"}) == "RMSNorm";
  o.apply_layernorm_1p = s.get_bool("apply_layernorm_1p", false);
  if (o.apply_layernorm_1p && o.rms_norm)
    throw ConfigError(fmt::format("model.apply_layernorm_1p (in {}) is LayerNorm's (Megatron's LayerNorm1P), but "
                                  "model.normalization = \"RMSNorm\" (in {})",
                                  s.origin("apply_layernorm_1p"), s.origin("normalization")));
  if (s.has("norm_epsilon")) {
    if (s.has("layernorm_epsilon"))
      throw ConfigError(fmt::format("model.norm_epsilon (in {}) and model.layernorm_epsilon (in {}) are the same "
                                    "setting: give only one",
                                    s.origin("norm_epsilon"), s.origin("layernorm_epsilon")));
    o.layernorm_epsilon = static_cast<float>(s.get_float("norm_epsilon", 1e-5, 0.0, 1.0));
  }
  o.swiglu = s.get_bool("swiglu", false);
  o.squared_relu = s.get_bool("squared_relu", false);
  const bool quick_geglu = s.get_bool("quick_geglu", false);
  std::vector<std::string> activations;  // the MLP activations set: one at most
  for (const auto& [key, set] : {std::pair<const char*, bool>{"swiglu", o.swiglu}, {"quick_geglu", quick_geglu},
                                 {"squared_relu", o.squared_relu}})
    if (set) activations.push_back(fmt::format("model.{} (in {})", key, s.origin(key)));
  if (activations.size() > 1)
    throw ConfigError(fmt::format("{} are MLP activations: give one", fmt::join(activations, " and ")));
  read_gated_linear_unit(s, quick_geglu, o);
  if (o.swiglu && !quick_geglu && !s.has("ffn_hidden_size")) {
    // Megatron-Core: int(4h·2/3 / 64)·64 when --ffn-hidden-size is not given.
    o.ffn_hidden_size = static_cast<std::int64_t>(4.0 * static_cast<double>(o.hidden_size) * 2.0 / 3.0 / 64.0) * 64;
    if (o.ffn_hidden_size <= 0)
      throw ConfigError(fmt::format("model.swiglu = true with hidden_size {} (in {}) gives the default "
                                    "ffn_hidden_size int(4·h·2/3 / 64)·64 = 0: set model.ffn_hidden_size",
                                    o.hidden_size, s.origin("hidden_size")));
    if (o.ffn_hidden_size % tp != 0)
      throw ConfigError(fmt::format("model.swiglu = true: the default ffn_hidden_size int(4·h·2/3 / 64)·64 = {} "
                                    "(hidden_size {} in {}) must be a multiple of parallel.tensor_model_parallel_size "
                                    "({}): set model.ffn_hidden_size",
                                    o.ffn_hidden_size, o.hidden_size, s.origin("hidden_size"), tp));
  }
  o.untie_embeddings_and_output_weights = s.get_bool("untie_embeddings_and_output_weights", false);
  o.add_bias_linear = s.get_bool("add_bias_linear", true);
  o.add_qkv_bias = s.get_bool("add_qkv_bias", false);
  o.qk_layernorm = s.get_bool("qk_layernorm", false);
}

namespace {

// The router's keys of read_moe_options (docs/moe.md): load balancing, scores, scaling, expert bias,
// groups and token dropping, each checked against the others.
MoeRouterOptions read_router_options(const ConfigSection& s, std::int64_t E, std::int64_t k) {
  MoeRouterOptions r;
  r.experts = E;
  r.topk = k;
  const std::string balance_type =
      s.get_choice("moe_router_load_balancing_type", "aux_loss", {"aux_loss", "seq_aux_loss", "sinkhorn", "none"});
  const bool balance = balance_type == "aux_loss" || balance_type == "seq_aux_loss";
  r.sinkhorn = balance_type == "sinkhorn";
  r.load_balancing = balance;
  r.per_sequence = balance_type == "seq_aux_loss";
  r.aux_loss_coeff = s.get_float("moe_aux_loss_coeff", 0.0, 0.0, 1e6);
  if (!balance && r.aux_loss_coeff != 0.0)
    throw ConfigError(fmt::format("model.moe_aux_loss_coeff = {} (in {}) with moe_router_load_balancing_type = "
                                  "\"{}\" (in {}): there is no load-balancing loss to weigh; drop one of them",
                                  r.aux_loss_coeff, s.origin("moe_aux_loss_coeff"), balance_type,
                                  s.origin("moe_router_load_balancing_type")));
  r.z_loss_coeff = s.get_float("moe_z_loss_coeff", 0.0, 0.0, 1e6);
  r.pre_softmax = s.get_bool("moe_router_pre_softmax", false);
  if (r.sinkhorn)
    for (const char* key : {"moe_router_score_function", "moe_router_num_groups", "moe_router_group_topk",
                            "moe_router_topk_scaling_factor"})
      if (s.has(key))
        throw ConfigError(fmt::format("model.{} (in {}) with moe_router_load_balancing_type = \"sinkhorn\": Sinkhorn "
                                      "routing has its own scores (sigmoid for top-1, softmax for top-k) and chooses "
                                      "among all experts; drop the key",
                                      key, s.origin(key)));
  // DeepSeek-V3's sigmoid scores (pre_softmax is accepted and has no effect there, as in Megatron-LM).
  r.sigmoid = s.get_choice("moe_router_score_function", "softmax", {"softmax", "sigmoid"}) == "sigmoid";
  if (s.has("moe_router_topk_scaling_factor")) {
    r.topk_scaling_factor = s.get_float("moe_router_topk_scaling_factor", 1.0, 1e-6, 1e6);
    if (!r.pre_softmax && !r.sigmoid)
      throw ConfigError(fmt::format("model.moe_router_topk_scaling_factor (in {}) scales the chosen experts' "
                                    "scores: it needs model.moe_router_pre_softmax = true or "
                                    "model.moe_router_score_function = \"sigmoid\" (the softmax over the chosen "
                                    "logits already sums to 1)",
                                    s.origin("moe_router_topk_scaling_factor")));
  }
  // DeepSeek-V3's aux-loss-free balancing: a per-expert bias on the routing scores.
  r.expert_bias = s.get_bool("moe_router_enable_expert_bias", false);
  if (r.expert_bias && !r.sigmoid)
    throw ConfigError(fmt::format("model.moe_router_enable_expert_bias (in {}) biases sigmoid routing scores: it needs "
                                  "model.moe_router_score_function = \"sigmoid\" (Megatron-LM's rule)",
                                  s.origin("moe_router_enable_expert_bias")));
  if (s.has("moe_router_bias_update_rate")) {
    r.bias_update_rate = s.get_float("moe_router_bias_update_rate", 1e-3, 0.0, 1e6);
    if (!r.expert_bias)
      throw ConfigError(fmt::format("model.moe_router_bias_update_rate (in {}) moves the expert bias: it needs "
                                    "model.moe_router_enable_expert_bias = true",
                                    s.origin("moe_router_bias_update_rate")));
  }
  // Group-limited routing (Megatron-Core's moe_router_num_groups / moe_router_group_topk).
  const bool has_groups = s.has("moe_router_num_groups"), has_group_topk = s.has("moe_router_group_topk");
  if (has_groups != has_group_topk) {
    const char* given = has_groups ? "moe_router_num_groups" : "moe_router_group_topk";
    const char* missing = has_groups ? "moe_router_group_topk" : "moe_router_num_groups";
    throw ConfigError(fmt::format("model.{} (in {}) needs model.{} too: group-limited routing picks "
                                  "moe_router_group_topk of moe_router_num_groups expert groups",
                                  given, s.origin(given), missing));
  }
  if (has_groups) {
    const std::int64_t groups = s.get_int("moe_router_num_groups", 1, 1, E);
    const std::int64_t chosen = s.get_int("moe_router_group_topk", 1, 1, groups);
    if (E % groups != 0 || k % chosen != 0 || k / chosen > E / groups)
      throw ConfigError(fmt::format("model.moe_router_num_groups = {} and moe_router_group_topk = {} (in {}) with {} "
                                    "experts, top-{}: the groups must split the experts evenly, the chosen groups "
                                    "must divide topk, and each chosen group must hold topk / group_topk experts",
                                    groups, chosen, s.origin("moe_router_num_groups"), E, k));
    r.num_groups = groups;
    r.group_topk = chosen;
  }
  // Token dropping: Megatron-LM's --moe-expert-capacity-factor (a negative value: dropless, as there).
  if (s.has("moe_expert_capacity_factor")) {
    const double factor = s.get_float("moe_expert_capacity_factor", 0.0, -1e9, 1e6);
    if (factor == 0.0)
      throw ConfigError(fmt::format("model.moe_expert_capacity_factor = 0 (in {}) would drop every token: give a "
                                    "factor > 0 (1.0: each expert takes its even share N·k/E), or a negative value "
                                    "or none for dropless routing",
                                    s.origin("moe_expert_capacity_factor")));
    r.capacity_factor = std::max(factor, 0.0);
  }
  if (s.has("moe_token_drop_policy")) {
    r.drop_by_position = s.get_choice("moe_token_drop_policy", "probs", {"probs", "position"}) == "position";
    if (r.capacity_factor <= 0.0)
      throw ConfigError(fmt::format("model.moe_token_drop_policy (in {}) chooses the tokens a full expert drops, but "
                                    "routing is dropless: set model.moe_expert_capacity_factor > 0, or drop the key",
                                    s.origin("moe_token_drop_policy")));
  }
  return r;
}

}  // namespace

void read_moe_options(const ConfigSection& s, TransformerOptions& o, const ParallelSizes& sizes) {
  const std::int64_t tp = sizes.tp;
  static const char* const kMoeKeys[] = {"moe_router_topk",    "moe_ffn_hidden_size",   "moe_router_load_balancing_type",
                                         "moe_aux_loss_coeff", "moe_z_loss_coeff",      "moe_router_pre_softmax",
                                         "moe_layer_freq",     "moe_router_topk_scaling_factor",
                                         "moe_shared_expert_intermediate_size", "moe_expert_capacity_factor",
                                         "moe_token_drop_policy", "moe_router_score_function",
                                         "moe_router_num_groups", "moe_router_group_topk",
                                         "moe_router_enable_expert_bias", "moe_router_bias_update_rate",
                                         "moe_token_dispatcher_type", "moe_shared_expert_gate",
                                         "moe_per_layer_logging", "activation_func_clamp_shared_expert"};
  if (!s.has("num_experts")) {
    for (const char* key : kMoeKeys)
      if (s.has(key))
        throw ConfigError(fmt::format("model.{} (in {}) configures mixture-of-experts layers, but model.num_experts is "
                                      "not set: set it, or drop the key",
                                      key, s.origin(key)));
    if (sizes.ep > 1)
      throw ConfigError(fmt::format("parallel.expert_model_parallel_size = {} splits the experts of mixture-of-experts "
                                    "layers over data-parallel ranks, but model.num_experts is not set: set it, or "
                                    "drop the key",
                                    sizes.ep));
    return;
  }
  MoeOptions& m = o.moe;
  m.router.experts = s.get_int("num_experts", 0, 1, 1 << 16);
  m.router.topk = s.get_int("moe_router_topk", 2, 1, m.router.experts);
  if (m.router.experts % sizes.ep != 0)
    throw ConfigError(fmt::format("model.num_experts {} (in {}) must be a multiple of parallel.expert_model_parallel_size "
                                  "({}): each expert-parallel rank holds an equal share of the experts",
                                  m.router.experts, s.origin("num_experts"), sizes.ep));
  m.expert_parallel = sizes.ep;
  m.expert_tensor_parallel = sizes.etp == 1 && tp > 1 ? 1 : 0;
  // Megatron-LM's --moe-token-dispatcher-type: how tokens reach the experts of other expert-parallel
  // ranks (the same numbers either way; without expert parallelism there is nothing to send).
  m.alltoall = s.get_choice("moe_token_dispatcher_type", "allgather", {"allgather", "alltoall"}) == "alltoall";
  m.ffn_hidden = s.get_int("moe_ffn_hidden_size", o.ffn_hidden_size, 1, 1 << 24);
  if (m.expert_tensor_parallel == 0 && m.ffn_hidden % tp != 0)
    throw ConfigError(fmt::format("model.moe_ffn_hidden_size {} ({}) must be a multiple of "
                                  "parallel.tensor_model_parallel_size ({}): each expert's MLP splits over tp (or set "
                                  "parallel.expert_tensor_parallel_size = 1: whole experts)",
                                  m.ffn_hidden, s.has("moe_ffn_hidden_size") ? "in " + s.origin("moe_ffn_hidden_size")
                                                                            : "ffn_hidden_size's",
                                  tp));
  m.shared_ffn_hidden = s.get_int("moe_shared_expert_intermediate_size", 0, 1, 1 << 24);
  if (m.shared_ffn_hidden % tp != 0)
    throw ConfigError(fmt::format("model.moe_shared_expert_intermediate_size {} (in {}) must be a multiple of "
                                  "parallel.tensor_model_parallel_size ({}): the shared expert splits over tp",
                                  m.shared_ffn_hidden, s.origin("moe_shared_expert_intermediate_size"), tp));
  // Megatron-Core's SharedExpertMLP gate (Qwen-MoE's shared_expert_gate): the shared expert's output
  // times sigmoid(x · w) per token.
  m.shared_gate = s.get_bool("moe_shared_expert_gate", false);
  m.per_layer_logging = s.get_bool("moe_per_layer_logging", false);
  if (m.shared_gate && m.shared_ffn_hidden == 0)
    throw ConfigError(fmt::format("model.moe_shared_expert_gate (in {}) gates the shared expert, but there is none: "
                                  "set model.moe_shared_expert_intermediate_size, or drop the key",
                                  s.origin("moe_shared_expert_gate")));
  // Megatron-Core's --no-activation-func-clamp-shared-expert (DeepSeek-V4's): the shared expert's
  // gated unit without activation_func_clamp_value's clamps.
  m.clamp_shared_expert = s.get_bool("activation_func_clamp_shared_expert", true);
  if (s.has("activation_func_clamp_shared_expert") && (m.shared_ffn_hidden == 0 || !std::isfinite(o.glu.clamp)))
    throw ConfigError(fmt::format("model.activation_func_clamp_shared_expert (in {}) says whether the shared expert "
                                  "clamps its gated unit: it needs model.moe_shared_expert_intermediate_size and "
                                  "model.activation_func_clamp_value",
                                  s.origin("activation_func_clamp_shared_expert")));
  m.router = read_router_options(s, m.router.experts, m.router.topk);
  // Megatron-Core's moe_layer_freq: every N-th layer from layer 0, or one 0/1 flag per layer.
  const std::size_t L = static_cast<std::size_t>(o.num_layers);
  if (s.is_array("moe_layer_freq")) {
    const std::vector<std::int64_t> flags = s.get_int_list("moe_layer_freq");
    if (flags.size() != L || std::any_of(flags.begin(), flags.end(), [](std::int64_t f) { return f != 0 && f != 1; }) ||
        std::count(flags.begin(), flags.end(), 1) == 0)
      throw ConfigError(fmt::format("model.moe_layer_freq (in {}) as an array has one flag per layer: {} values of 0 "
                                    "(dense) or 1 (mixture of experts), at least one 1",
                                    s.origin("moe_layer_freq"), L));
    for (std::int64_t f : flags) o.moe_layer_pattern.push_back(f == 1);
  } else if (s.has("moe_layer_freq")) {
    const std::int64_t every = s.get_int("moe_layer_freq", 1, 1, std::max<std::int64_t>(1, o.num_layers));
    for (std::size_t i = 0; i < L; ++i) o.moe_layer_pattern.push_back(static_cast<std::int64_t>(i) % every == 0);
  }
  if (std::all_of(o.moe_layer_pattern.begin(), o.moe_layer_pattern.end(), [](bool b) { return b; }))
    o.moe_layer_pattern.clear();  // every layer
  m.swiglu = o.swiglu;
  m.squared_relu = o.squared_relu;
  m.recompute_shared_expert = o.recompute.selective(&RecomputeModules::shared_experts);
  m.recompute_expert_activation = o.recompute.selective(&RecomputeModules::moe_act);
}

TransformerOptions read_gpt_style_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                                          const ParallelSizes& sizes, const std::string& model) {
  TransformerOptions o = read_transformer_options(s, vocab_size, seed, sizes, model);
  read_llama_style_options(s, o, sizes.tp);  // rope, RMSNorm, SwiGLU, untied head, no biases (docs/llama.md)
  read_moe_options(s, o, sizes);             // mixture of experts (docs/moe.md)
  read_mtp_options(s, o);                    // multi-token prediction (docs/mtp.md)
  // Context parallelism (docs/parallelism.md) is built for dense layers and one prediction.
  if (sizes.cp > 1 && (o.moe.router.experts > 0 || o.mtp_num_layers > 0))
    throw ConfigError(fmt::format("parallel.context_parallel_size = {} with model.{} (in {}): context parallelism with "
                                  "{} is not built; set context_parallel_size = 1",
                                  sizes.cp, o.moe.router.experts > 0 ? "num_experts" : "mtp_num_layers",
                                  s.origin(o.moe.router.experts > 0 ? "num_experts" : "mtp_num_layers"),
                                  o.moe.router.experts > 0 ? "mixture-of-experts layers" : "multi-token prediction"));
  return o;
}

void read_mtp_options(const ConfigSection& s, TransformerOptions& o) {
  // Depth k predicts token i + k + 1 at position i: at k ≥ seq_length − 1 no position has a target.
  o.mtp_num_layers = s.get_int("mtp_num_layers", 0, 0, std::max<std::int64_t>(0, o.seq_length - 2));
  for (const char* key : {"mtp_loss_scaling_factor", "mtp_use_repeated_layer"})
    if (o.mtp_num_layers == 0 && s.has(key))
      throw ConfigError(fmt::format("model.{} (in {}) {}, but model.mtp_num_layers is {}: set mtp_num_layers ≥ 1 or "
                                    "drop the key",
                                    key, s.origin(key),
                                    std::string(key) == "mtp_loss_scaling_factor"
                                        ? "weighs the multi-token prediction losses"
                                        : "shares one multi-token prediction depth's weights",
                                    s.has("mtp_num_layers") ? "0" : "unset"));
  o.mtp_loss_scaling_factor = s.get_float("mtp_loss_scaling_factor", 0.1, 0.0, 1e6);
  o.mtp_use_repeated_layer = s.get_bool("mtp_use_repeated_layer", false);
}

std::int64_t TransformerOptions::moe_layers() const { return static_cast<std::int64_t>(moe_layer_indices().size()); }

std::int64_t TransformerOptions::window_layers() const {
  if (window_left < 0) return 0;
  if (window_layer_pattern.empty()) return num_layers;
  return std::count(window_layer_pattern.begin(), window_layer_pattern.end(), true);
}

std::vector<std::int64_t> TransformerOptions::moe_layer_indices() const {
  std::vector<std::int64_t> layers;
  for (std::int64_t i = 0; i < num_layers; ++i)
    if (moe_layer(i)) layers.push_back(i);
  return layers;
}

void refuse_pipeline_split(int pipeline_split_rank, const std::string& model) {
  if (pipeline_split_rank != 0)
    throw ConfigError(fmt::format("parallel.pipeline_model_parallel_split_rank ({}) is for encoder-decoder models (t5); "
                                  "model plugin '{}' has one stack of layers: leave it unset",
                                  pipeline_split_rank, model));
}

TransformerBlockOptions transformer_block_options(const TransformerOptions& o, TpGroup tp, bool sequence_parallel,
                                                  std::int64_t first_layer, std::int64_t count, bool ends_model) {
  TransformerBlockOptions b;
  TransformerLayerOptions& l = b.layer;
  l.attention = {o.hidden_size, o.num_attention_heads, o.num_query_groups, o.init_method_std,
                 static_cast<float>(o.init_method_std / std::sqrt(2.0 * o.num_layers)), std::move(tp),
                 sequence_parallel};
  l.attention.bias = o.add_bias_linear;
  l.attention.qkv_bias = o.add_bias_linear || o.add_qkv_bias;
  l.attention.kv_channels = o.kv_channels;
  l.attention.window_left = o.window_left;
  l.attention.softmax_type = o.softmax_type;
  if (!o.window_layer_pattern.empty())  // the flags only, not a copy of every option
    b.window_of_layer = [flags = o.window_layer_pattern, left = o.window_left](std::int64_t layer) {
      return flags.at(static_cast<std::size_t>(layer)) ? left : std::int64_t{-1};
    };
  if (!o.nope_layer_pattern.empty())
    b.rope_of_layer = [nope = o.nope_layer_pattern](std::int64_t layer) {
      return !nope.at(static_cast<std::size_t>(layer));
    };
  l.attention.rotary.dim = o.rotary_dim();
  l.attention.rotary.base = o.rotary_base;
  l.attention.rotary.interleaved = o.rotary_interleaved;
  l.attention.rotary.scaling_factor = o.rope_scaling_factor;
  l.attention.rotary.interpolation = o.rotary_interpolation;
  l.attention.rotary.yarn = o.rope_yarn;
  if (o.rms_norm) l.spec.norm = rms_norm_spec();
  if (o.apply_layernorm_1p) l.spec.norm = layer_norm_1p_spec();
  if (o.qk_layernorm) {
    l.attention.qk_norm = l.spec.norm;
    l.attention.qk_norm_eps = static_cast<float>(o.layernorm_epsilon);
  }
  if (o.swiglu) l.spec.mlp = swiglu_mlp_spec();
  if (o.squared_relu) l.spec.mlp = squared_relu_mlp_spec();
  if (o.moe.router.experts > 0 && o.moe_layer_pattern.empty()) {
    l.spec.mlp = moe_mlp_spec(o.moe);
  } else if (o.moe.router.experts > 0) {  // some layers dense
    b.mlp_of_layer = [moe = moe_mlp_spec(o.moe), dense = l.spec.mlp, flags = o.moe_layer_pattern](std::int64_t layer) {
      return flags.at(static_cast<std::size_t>(layer)) ? moe : dense;
    };
  }
  l.ffn_hidden = o.ffn_hidden_size;
  l.layernorm_epsilon = o.layernorm_epsilon;
  l.hidden_dropout = o.hidden_dropout;
  l.residual_post_norm = o.residual_post_norm;
  l.gelu = o.exact_gelu ? ops::GeluForm::erf : ops::GeluForm::tanh;
  l.glu = o.glu;
  l.attention.dropout = o.attention_dropout;
  b.name = "layers";
  b.first_layer = first_layer;
  b.num_layers = count;
  b.recompute = o.recompute;
  if (ends_model) b.final_norm = "final_layernorm";
  return b;
}

double transformer_flops_per_iteration(const TransformerOptions& o, std::int64_t sequences) {
  // Megatron-LM: 24·f·B·s·l·h² + 4·f·B·s²·l·h + 6·B·s·h·V with f = 3 (forward + backward);
  // the K/V projections shrink with query groups: 4·B·s·l·h·(h + h_kv)·f replaces 8·f·B·s·l·h².
  // With kv_channels the attention's width is h_q = heads·kv_channels (Megatron's
  // query_projection_to_hidden_size_ratio = h_q / h scales the attention terms).
  const double B = static_cast<double>(sequences), s = static_cast<double>(o.seq_length);
  const double l = static_cast<double>(o.num_layers), h = static_cast<double>(o.hidden_size);
  const double groups = static_cast<double>(o.num_query_groups > 0 ? o.num_query_groups : o.num_attention_heads);
  const double d = static_cast<double>(o.kv_channels);
  const double h_q = d * static_cast<double>(o.num_attention_heads), h_kv = d * groups;
  // Mixture of experts: each token through top-k experts of moe_ffn_hidden_size (and the shared
  // expert, as Megatron-LM's shared_expert_ffn_hidden_size) in the moe_layers(),
  // ffn_hidden_size in the others (Megatron-LM's num_experts_routed_to and its MoE layer pattern;
  // the router's h·E is not counted, as there).
  const double moe_layers = static_cast<double>(o.moe_layers());
  const double ffn = (moe_layers * static_cast<double>(o.moe.ffn_hidden * o.moe.router.topk + o.moe.shared_ffn_hidden) +
                      (static_cast<double>(o.num_layers) - moe_layers) * static_cast<double>(o.ffn_hidden_size)) /
                     static_cast<double>(std::max<std::int64_t>(1, o.num_layers));  // the layers' mean
  const double f = 3.0;
  const double mlp_matrices = o.swiglu ? 3.0 : 2.0;  // SwiGLU: fc1's two halves and fc2
  const double per_layer = 2.0 * B * s * h * (h_q + 2.0 * h_kv) /*q, kv*/ + 2.0 * B * s * h_q * h /*out*/ +
                           2.0 * mlp_matrices * B * s * h * ffn /*mlp*/ + 4.0 * B * s * s * h_q /*attention*/;
  double total = f * l * per_layer + 6.0 * B * s * h * static_cast<double>(o.padded_vocab_size);
  if (o.mtp_num_layers > 0) {
    // Multi-token prediction, as Megatron-LM counts it: each depth one more layer like the last
    // (dense or mixture of experts as the last), 2h² + 3h per token for the projection and the
    // three norms, and another LM head.
    const double last_ffn = o.moe_layer(o.num_layers - 1)
                                ? static_cast<double>(o.moe.ffn_hidden * o.moe.router.topk + o.moe.shared_ffn_hidden)
                                : static_cast<double>(o.ffn_hidden_size);
    const double mtp_layer = per_layer + 2.0 * mlp_matrices * B * s * h * (last_ffn - ffn);
    const double projection = 2.0 * B * s * (2.0 * h * h + 3.0 * h);
    total += static_cast<double>(o.mtp_num_layers) *
             (f * (mtp_layer + projection) + 6.0 * B * s * h * static_cast<double>(o.padded_vocab_size));
  }
  return total;
}

}  // namespace tessera
