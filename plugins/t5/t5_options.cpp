#include "t5_options.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/nn/recompute.hpp"

namespace tessera::t5 {

namespace {

// One of two names for one value (Megatron-LM's seq_length / encoder_seq_length, num_layers /
// encoder_num_layers): either may be given, both only if equal.
std::int64_t aliased_int(const ConfigSection& s, const char* key, const char* alias, std::int64_t fallback,
                         std::int64_t min, std::int64_t max) {
  const bool has_key = s.has(key), has_alias = s.has(alias);
  const std::int64_t v = s.get_int(key, fallback, min, max);
  if (!has_alias) return v;
  const std::int64_t a = s.get_int(alias, fallback, min, max);
  if (has_key && a != v)
    throw ConfigError(fmt::format("model.{} ({}) in {} and model.{} ({}) in {} differ: they name the same value, "
                                  "the encoder's (give one of them)",
                                  alias, a, s.origin(alias), key, v, s.origin(key)));
  return a;
}

}  // namespace

T5Options read_t5_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                          const ParallelSizes& p) {
  const std::int64_t tp = p.tp, pp = p.pp;
  // What T5 cannot run is refused first, naming the key.
  if (p.sequence_parallel && tp > 1)
    throw ConfigError("parallel.sequence_parallel = true: the t5 model does not support sequence parallelism "
                      "(its decoder's cross-attention attends to the whole encoder output, which sequence-parallel "
                      "layers would hold in token shards); set parallel.sequence_parallel = false");
  if (p.cp > 1)
    throw ConfigError(fmt::format("parallel.context_parallel_size = {}: the t5 model does not support context "
                                  "parallelism (Tessera splits causal self-attention only; the gpt model takes it); "
                                  "set it to 1",
                                  p.cp));
  if (p.vpp > 1)
    throw ConfigError(fmt::format(
        "parallel.virtual_pipeline_model_parallel_size = {}: the interleaved schedule is not supported for the t5 "
        "encoder-decoder (as in Megatron-LM); use the 1f1b schedule with pipeline_model_parallel_split_rank",
        p.vpp));
  if (p.first_stage_layers > 0 || p.last_stage_layers > 0)
    throw ConfigError("parallel.decoder_first_pipeline_num_layers / decoder_last_pipeline_num_layers: the t5 "
                      "encoder-decoder splits its stacks by parallel.pipeline_model_parallel_split_rank (encoder "
                      "layers evenly before it, decoder layers evenly from it on), not by uneven stages");
  if (p.embedding_in_split || p.loss_in_split)
    throw ConfigError("parallel.account_for_embedding_in_pipeline_split / account_for_loss_in_pipeline_split: the "
                      "t5 encoder-decoder splits its stacks by parallel.pipeline_model_parallel_split_rank, not by "
                      "counting the embedding or loss as layers");
  if (p.ep > 1)
    throw ConfigError(fmt::format("parallel.expert_model_parallel_size = {}: the t5 model has no mixture-of-experts "
                                  "layers to split (the gpt model has: model.num_experts); set it to 1",
                                  p.ep));
  if (pp > 1 && p.pipeline_split_rank == 0)
    throw ConfigError(fmt::format(
        "parallel.pipeline_model_parallel_size = {} needs parallel.pipeline_model_parallel_split_rank for the t5 "
        "model: stages [0, split) hold the encoder, [split, {}) the decoder (Megatron-LM requires it too)",
        pp, pp));

  // The transformer keys and checks (nn/transformer_options.hpp), with T5's aliases and a second
  // length and depth.
  T5Options o;
  TransformerOptions& t = o.t;
  // num_layers is the encoder's depth (Megatron-LM: the same as encoder_num_layers); the decoder's
  // defaults to it (Megatron-LM has no default for decoder_num_layers, a known complaint).
  t.num_layers = aliased_int(s, "num_layers", "encoder_num_layers", 2, 1, 100000);
  o.encoder_num_layers = t.num_layers;
  o.decoder_num_layers = s.get_int("decoder_num_layers", t.num_layers, 1, 100000);
  t.hidden_size = s.get_int("hidden_size", 64, 1, 1 << 20);
  t.num_attention_heads = s.get_int("num_attention_heads", 4, 1, 1 << 16);
  t.num_query_groups = t.num_attention_heads;  // multi-head (Megatron-LM's T5 refuses multi-query)
  t.ffn_hidden_size = s.get_int("ffn_hidden_size", 4 * t.hidden_size, 1, 1 << 24);
  t.seq_length = aliased_int(s, "seq_length", "encoder_seq_length", 64, 1, 1 << 20);
  // Megatron-LM has no default either (its examples/pretrain_t5.sh passes 128): a decoder length is a choice.
  if (!s.has("decoder_seq_length"))
    throw ConfigError(fmt::format("model.decoder_seq_length is missing in {}: the t5 model needs the decoder's "
                                  "length (Megatron-LM's examples/pretrain_t5.sh uses 128)",
                                  s.origin("decoder_seq_length")));
  o.decoder_seq_length = s.get_int("decoder_seq_length", 128, 1, 1 << 20);
  // One position table serves encoder and decoder (Megatron-LM's T5): long enough for both.
  const std::int64_t longest = std::max(t.seq_length, o.decoder_seq_length);
  t.max_position_embeddings = s.get_int("max_position_embeddings", longest, 1, 1 << 20);
  if (t.max_position_embeddings < longest)
    throw ConfigError(fmt::format("model.max_position_embeddings ({}) in {} must be at least the encoder's "
                                  "seq_length ({}) and decoder_seq_length ({}): one position table serves both",
                                  t.max_position_embeddings, s.origin("max_position_embeddings"), t.seq_length,
                                  o.decoder_seq_length));
  t.hidden_dropout = static_cast<float>(s.get_float("hidden_dropout", 0.0, 0.0, 0.99));
  t.attention_dropout = static_cast<float>(s.get_float("attention_dropout", 0.0, 0.0, 0.99));
  t.init_method_std = static_cast<float>(s.get_float("init_method_std", 0.02, 0.0, 10.0));
  t.layernorm_epsilon = static_cast<float>(s.get_float("layernorm_epsilon", 1e-5, 0.0, 1.0));
  const std::int64_t divisible_by = s.get_int("make_vocab_size_divisible_by", 128, 1, 1 << 20);
  t.kv_channels = read_kv_channels(s, t.hidden_size, t.num_attention_heads);
  read_residual_and_gelu(s, t);  // post-LN residuals (every sublayer, cross-attention too) and the GELU
  const auto require_tp_divides = [&](const char* key, std::int64_t value) {
    if (value % tp != 0)
      throw ConfigError(fmt::format("model.{} ({}) in {} must be a multiple of parallel.tensor_model_parallel_size ({})",
                                    key, value, s.origin(key), tp));
  };
  require_tp_divides("hidden_size", t.hidden_size);
  require_tp_divides("num_attention_heads", t.num_attention_heads);
  require_tp_divides("ffn_hidden_size", t.ffn_hidden_size);
  // Under a pipeline split each encoder stage holds encoder_num_layers / split layers and each decoder
  // stage decoder_num_layers / (pp − split) (Megatron-LM's rule).
  std::int64_t encoder_stage_layers = o.encoder_num_layers, decoder_stage_layers = o.decoder_num_layers;
  if (pp > 1) {
    const std::int64_t split = p.pipeline_split_rank;
    if (o.encoder_num_layers % split != 0) {
      const char* key = s.has("encoder_num_layers") ? "encoder_num_layers" : "num_layers";
      throw ConfigError(fmt::format("model.{} ({}, the encoder's) in {} must be a multiple of "
                                    "parallel.pipeline_model_parallel_split_rank ({}): the encoder's stages [0, {}) "
                                    "hold equal shares of its layers",
                                    key, o.encoder_num_layers, s.origin(key), split, split));
    }
    if (o.decoder_num_layers % (pp - split) != 0)
      throw ConfigError(fmt::format("model.decoder_num_layers ({}) in {} must be a multiple of the {} decoder stages "
                                    "(pipeline_model_parallel_size {} − pipeline_model_parallel_split_rank {})",
                                    o.decoder_num_layers, s.origin("decoder_num_layers"), pp - split, pp, split));
    encoder_stage_layers /= split;
    decoder_stage_layers /= pp - split;
  }
  // Full recompute applies to each stack on each stage: its groups must fit both.
  t.recompute = read_recompute_options(s, encoder_stage_layers, p.tp, p.sequence_parallel);
  read_recompute_options(s, decoder_stage_layers, p.tp, p.sequence_parallel);
  if (vocab_size <= 0) throw ConfigError("t5: the tokenizer reported an empty vocabulary");
  t.vocab_size = vocab_size;
  // Megatron-LM pads the vocabulary to a multiple of make_vocab_size_divisible_by × tp.
  const std::int64_t multiple = divisible_by * tp;
  t.padded_vocab_size = (t.vocab_size + multiple - 1) / multiple * multiple;
  t.seed = seed;
  return o;
}

}  // namespace tessera::t5
