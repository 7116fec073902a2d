#include "tessera/tools/hf_bert.hpp"

#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hf_common.hpp"
#include "tessera/error.hpp"
#include "tessera/io/json_input.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

using hf::slice_rows;
using hf::toml_float;

std::string layer(std::int64_t i, const char* rest) { return fmt::format("layers.{}.{}", i, rest); }

}  // namespace

HfBertShape hf_bert_shape_for_export(const TransformerOptions& o, bool binary_head, const std::string& source) {
  const auto refuse = [&](const char* key, const std::string& why) {
    return ConfigError(fmt::format("model.{} in {}: {}, so this BERT cannot be exported as Hugging Face's "
                                   "megatron-bert",
                                   key, source, why));
  };
  if (o.residual_post_norm)
    throw refuse("apply_residual_connection_post_layernorm",
                 "its layers add the sublayers' inputs to their outputs (pre-LayerNorm), not the norms' outputs");
  if (o.num_query_groups != o.num_attention_heads)
    throw refuse("num_query_groups", fmt::format("its attention is multi-head, this model's has {} query groups of {} "
                                                 "heads",
                                                 o.num_query_groups, o.num_attention_heads));
  if (o.kv_channels * o.num_attention_heads != o.hidden_size)
    throw refuse("kv_channels", fmt::format("its heads have hidden_size / num_attention_heads = {} channels, this "
                                            "model's {}",
                                            o.hidden_size / o.num_attention_heads, o.kv_channels));
  if (o.apply_layernorm_1p) throw refuse("apply_layernorm_1p", "its LayerNorms are plain ones");
  // One hidden_act serves the MLP and the LM head's transform; Megatron-LM's BERT has the fused
  // bias-GELU's tanh form in the MLP and F.gelu's erf form in the head unless told otherwise.
  if (!o.exact_gelu && !o.openai_gelu)
    throw refuse("bias_gelu_fusion",
                 "its MLP and LM head share one GELU, and this model's MLP has the tanh form (the fused bias-GELU) "
                 "while its LM head has the exact one: train with bias_gelu_fusion = false (the exact GELU in both) "
                 "or openai_gelu = true (the tanh form in both)");
  HfBertShape s;
  s.set_from(o);
  s.binary_head = binary_head;
  s.hidden_act = o.openai_gelu ? "gelu_new" : "gelu";
  return s;
}

std::string hf_bert_config_json(const HfBertShape& s, const std::map<std::string, std::string>& extra) {
  nlohmann::ordered_json j;
  j["architectures"] = {s.architecture()};
  j["model_type"] = kHfBertModelType;
  j["vocab_size"] = s.vocab;
  j["hidden_size"] = s.hidden;
  j["num_hidden_layers"] = s.layers;
  j["num_attention_heads"] = s.heads;
  j["intermediate_size"] = s.ffn;
  j["hidden_act"] = s.hidden_act;
  j["hidden_dropout_prob"] = s.dropout;
  j["attention_probs_dropout_prob"] = s.attention_dropout;
  j["max_position_embeddings"] = s.positions;
  j["type_vocab_size"] = 2;
  j["initializer_range"] = s.init_std;
  j["layer_norm_eps"] = s.norm_epsilon;
  j["position_embedding_type"] = "absolute";
  j["tie_word_embeddings"] = true;
  if (s.pad >= 0) j["pad_token_id"] = s.pad;
  if (s.bos >= 0) j["bos_token_id"] = s.bos;
  if (s.eos >= 0) j["eos_token_id"] = s.eos;
  j["torch_dtype"] = s.torch_dtype;
  for (const auto& [key, value] : extra) j[key] = nlohmann::ordered_json::parse(value);
  return j.dump(2) + "\n";
}

HfBertShape parse_hf_bert_config(const std::string& text, const std::string& path) {
  const nlohmann::json j = detail::parse_untrusted_json(text, path);
  if (!j.is_object()) throw FormatError(fmt::format("{}: not a JSON object", path));
  const hf::ConfigReader r{j, path, "Tessera's BERT"};
  // MegatronBertConfig's defaults for what a config.json leaves out.
  HfBertShape s;
  s.vocab = r.size("vocab_size", 29056);
  s.hidden = r.size("hidden_size", 1024);
  s.layers = r.size("num_hidden_layers", 24);
  s.heads = r.size("num_attention_heads", 16);
  s.ffn = r.size("intermediate_size", 4096);
  s.positions = r.size("max_position_embeddings", 512);
  s.norm_epsilon = r.number("layer_norm_eps", 1e-12);
  s.init_std = r.number("initializer_range", 0.02);
  s.dropout = r.number("hidden_dropout_prob", 0.1);
  s.attention_dropout = r.number("attention_probs_dropout_prob", 0.1);
  s.hidden_act = r.text("hidden_act", "gelu");
  if (s.hidden_act == "gelu_pytorch_tanh") s.hidden_act = "gelu_new";  // the same tanh form
  r.require("hidden_act", s.hidden_act == "gelu" || s.hidden_act == "gelu_new",
            "the exact GELU (\"gelu\") or the tanh form (\"gelu_new\", \"gelu_pytorch_tanh\")");
  if (r.has("position_embedding_type"))
    r.require("position_embedding_type", r.text("position_embedding_type", "") == "absolute",
              "learned absolute positions (\"absolute\")");
  if (s.hidden % s.heads != 0)
    throw FormatError(fmt::format("{}: hidden size {} is not a multiple of the {} attention heads", path, s.hidden,
                                  s.heads));
  if (s.dropout >= 0.99) throw r.bad("hidden_dropout_prob", fmt::format("is {}, expected < 0.99", s.dropout));
  if (s.attention_dropout >= 0.99)
    throw r.bad("attention_probs_dropout_prob", fmt::format("is {}, expected < 0.99", s.attention_dropout));
  s.pad = r.token("pad_token_id");
  s.bos = r.token("bos_token_id");
  s.eos = r.token("eos_token_id");
  return s;
}

std::string tessera_bert_model_toml(const HfBertShape& s) {
  std::string t = "[model]\nplugin = \"bert\"\n";
  t += fmt::format("num_layers = {}\nhidden_size = {}\nnum_attention_heads = {}\nffn_hidden_size = {}\n", s.layers,
                   s.hidden, s.heads, s.ffn);
  t += fmt::format("seq_length = {}\nmax_position_embeddings = {}\n", s.positions, s.positions);
  t += fmt::format("init_method_std = {}\nhidden_dropout = {}\nattention_dropout = {}\nlayernorm_epsilon = {}\n",
                   toml_float(s.init_std), toml_float(s.dropout), toml_float(s.attention_dropout),
                   toml_float(s.norm_epsilon));
  // HF's one GELU: the exact form in the MLP (bias_gelu_fusion = false) and the LM head (Megatron's
  // F.gelu), or the tanh form in both (openai_gelu).
  t += s.hidden_act == "gelu" ? "bias_gelu_fusion = false\n" : "openai_gelu = true\n";
  t += fmt::format("bert_binary_head = {}\n", s.binary_head);
  return t;
}

NamedTensors hf_bert_tensors_from_tessera(const HfBertShape& s, const std::map<std::string, Tensor>& tessera) {
  const auto get = [&](const std::string& name) -> const Tensor& {
    auto it = tessera.find(name);
    if (it == tessera.end()) throw Error(fmt::format("the model has no parameter '{}' for megatron-bert", name));
    return it->second;
  };
  const std::int64_t C = s.hidden;
  NamedTensors out;
  out.emplace_back("bert.embeddings.word_embeddings.weight", get("embedding.word_embeddings.weight"));
  out.emplace_back("bert.embeddings.position_embeddings.weight", get("embedding.position_embeddings.weight"));
  // HF's embeddings always add token type 0's row: zeros reproduce a model without token types.
  out.emplace_back("bert.embeddings.token_type_embeddings.weight",
                   s.binary_head ? get("embedding.tokentype_embeddings.weight") : Tensor::zeros({2, C}));
  for (std::int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("bert.encoder.layer.{}.", i);
    const Tensor &kv_w = get(layer(i, "attention.key_value.weight")), &kv_b = get(layer(i, "attention.key_value.bias"));
    out.emplace_back(p + "attention.ln.weight", get(layer(i, "ln1.weight")));
    out.emplace_back(p + "attention.ln.bias", get(layer(i, "ln1.bias")));
    out.emplace_back(p + "attention.self.query.weight", get(layer(i, "attention.query.weight")));
    out.emplace_back(p + "attention.self.query.bias", get(layer(i, "attention.query.bias")));
    out.emplace_back(p + "attention.self.key.weight", slice_rows(kv_w, 0, C));
    out.emplace_back(p + "attention.self.key.bias", slice_rows(kv_b, 0, C));
    out.emplace_back(p + "attention.self.value.weight", slice_rows(kv_w, C, 2 * C));
    out.emplace_back(p + "attention.self.value.bias", slice_rows(kv_b, C, 2 * C));
    out.emplace_back(p + "attention.output.dense.weight", get(layer(i, "attention.output.weight")));
    out.emplace_back(p + "attention.output.dense.bias", get(layer(i, "attention.output.bias")));
    out.emplace_back(p + "ln.weight", get(layer(i, "ln2.weight")));
    out.emplace_back(p + "ln.bias", get(layer(i, "ln2.bias")));
    out.emplace_back(p + "intermediate.dense.weight", get(layer(i, "mlp.fc1.weight")));
    out.emplace_back(p + "intermediate.dense.bias", get(layer(i, "mlp.fc1.bias")));
    out.emplace_back(p + "output.dense.weight", get(layer(i, "mlp.fc2.weight")));
    out.emplace_back(p + "output.dense.bias", get(layer(i, "mlp.fc2.bias")));
  }
  out.emplace_back("bert.encoder.ln.weight", get("final_layernorm.weight"));
  out.emplace_back("bert.encoder.ln.bias", get("final_layernorm.bias"));
  if (s.binary_head) {
    out.emplace_back("bert.pooler.dense.weight", get("pooler.dense.weight"));
    out.emplace_back("bert.pooler.dense.bias", get("pooler.dense.bias"));
  }
  out.emplace_back("cls.predictions.transform.dense.weight", get("lm_head.dense.weight"));
  out.emplace_back("cls.predictions.transform.dense.bias", get("lm_head.dense.bias"));
  out.emplace_back("cls.predictions.transform.LayerNorm.weight", get("lm_head.layernorm.weight"));
  out.emplace_back("cls.predictions.transform.LayerNorm.bias", get("lm_head.layernorm.bias"));
  // The decoder is tied to the word embeddings and its bias to this one (transformers ties both).
  out.emplace_back("cls.predictions.bias", get("lm_head.bias"));
  if (s.binary_head) {
    out.emplace_back("cls.seq_relationship.weight", get("binary_head.weight"));
    out.emplace_back("cls.seq_relationship.bias", get("binary_head.bias"));
  }
  return out;
}

std::map<std::string, Tensor> tessera_bert_tensors_from_hf(const HfBertShape& s, std::map<std::string, Tensor> hf,
                                                           const std::string& where) {
  const auto take = [&](const std::string& name, const Shape& shape) {
    return hf::take_tensor(hf, name, shape, where, kHfBertModelType);
  };
  const std::int64_t C = s.hidden, V = s.vocab, F = s.ffn;
  std::map<std::string, Tensor> out;
  out["embedding.word_embeddings.weight"] = take("bert.embeddings.word_embeddings.weight", {V, C});
  Tensor positions = take("bert.embeddings.position_embeddings.weight", {s.positions, C});
  auto types = hf.find("bert.embeddings.token_type_embeddings.weight");
  if (types == hf.end() || types->second.dim() != 2 || types->second.size(1) != C || types->second.size(0) < 1)
    throw FormatError(fmt::format("{}: no tensor 'bert.embeddings.token_type_embeddings.weight' of {} columns, which "
                                  "a megatron-bert model has",
                                  where, C));
  if (s.binary_head) {  // the sentence-order head's two token types
    out["embedding.tokentype_embeddings.weight"] = take("bert.embeddings.token_type_embeddings.weight", {2, C});
  } else {  // every token is of type 0 there: its row joins each position's
    const Tensor row0 = types->second.rows(0, 1).clone();
    hf.erase(types);
    float* pos = positions.data<float>();
    const float* add = row0.data<float>();
    for (std::int64_t t = 0; t < s.positions; ++t)
      for (std::int64_t c = 0; c < C; ++c) pos[t * C + c] += add[c];
  }
  out["embedding.position_embeddings.weight"] = std::move(positions);
  for (std::int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("bert.encoder.layer.{}.", i);
    out[layer(i, "ln1.weight")] = take(p + "attention.ln.weight", {C});
    out[layer(i, "ln1.bias")] = take(p + "attention.ln.bias", {C});
    out[layer(i, "attention.query.weight")] = take(p + "attention.self.query.weight", {C, C});
    out[layer(i, "attention.query.bias")] = take(p + "attention.self.query.bias", {C});
    Tensor kw = take(p + "attention.self.key.weight", {C, C}), vw = take(p + "attention.self.value.weight", {C, C});
    Tensor kb = take(p + "attention.self.key.bias", {C}), vb = take(p + "attention.self.value.bias", {C});
    out[layer(i, "attention.key_value.weight")] = hf::cat_rows({kw, vw});
    out[layer(i, "attention.key_value.bias")] = hf::cat_rows({kb, vb});
    out[layer(i, "attention.output.weight")] = take(p + "attention.output.dense.weight", {C, C});
    out[layer(i, "attention.output.bias")] = take(p + "attention.output.dense.bias", {C});
    out[layer(i, "ln2.weight")] = take(p + "ln.weight", {C});
    out[layer(i, "ln2.bias")] = take(p + "ln.bias", {C});
    out[layer(i, "mlp.fc1.weight")] = take(p + "intermediate.dense.weight", {F, C});
    out[layer(i, "mlp.fc1.bias")] = take(p + "intermediate.dense.bias", {F});
    out[layer(i, "mlp.fc2.weight")] = take(p + "output.dense.weight", {C, F});
    out[layer(i, "mlp.fc2.bias")] = take(p + "output.dense.bias", {C});
  }
  out["final_layernorm.weight"] = take("bert.encoder.ln.weight", {C});
  out["final_layernorm.bias"] = take("bert.encoder.ln.bias", {C});
  if (s.binary_head) {
    out["pooler.dense.weight"] = take("bert.pooler.dense.weight", {C, C});
    out["pooler.dense.bias"] = take("bert.pooler.dense.bias", {C});
    out["binary_head.weight"] = take("cls.seq_relationship.weight", {2, C});
    out["binary_head.bias"] = take("cls.seq_relationship.bias", {2});
  }
  out["lm_head.dense.weight"] = take("cls.predictions.transform.dense.weight", {C, C});
  out["lm_head.dense.bias"] = take("cls.predictions.transform.dense.bias", {C});
  out["lm_head.layernorm.weight"] = take("cls.predictions.transform.LayerNorm.weight", {C});
  out["lm_head.layernorm.bias"] = take("cls.predictions.transform.LayerNorm.bias", {C});
  out["lm_head.bias"] = take("cls.predictions.bias", {V});
  // Tied copies saved anyway must be what they are tied to.
  for (const auto& [name, tied] : {std::pair{"cls.predictions.decoder.weight", "embedding.word_embeddings.weight"},
                                   std::pair{"cls.predictions.decoder.bias", "lm_head.bias"}}) {
    auto it = hf.find(name);
    if (it == hf.end()) continue;
    const Tensor& to = out.at(tied);
    if (it->second.shape() != to.shape() || std::memcmp(it->second.raw(), to.raw(), to.nbytes()) != 0)
      throw FormatError(fmt::format("{}: tensor '{}' differs from the one it is tied to in megatron-bert", where, name));
    hf.erase(it);
  }
  hf.erase("bert.embeddings.position_ids");  // a buffer older transformers saved
  if (!hf.empty())
    throw FormatError(fmt::format("{}: tensor {} is not a parameter of a {} model ({} such tensor(s))", where,
                                  quote_untrusted(hf.begin()->first), s.architecture(), hf.size()));
  return out;
}

}  // namespace tessera
