// Tessera's BERT (Megatron-LM's: pre-LayerNorm layers, no embedding LayerNorm, a final LayerNorm)
// as Hugging Face's MegatronBert (model_type "megatron-bert", NVIDIA's conversion of Megatron-LM
// BERT): MegatronBertForPreTraining with the binary head (pooler and seq_relationship),
// MegatronBertForMaskedLM without. docs/checkpoints.md "Hugging Face export and import" has the
// names.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "tessera/io/safetensors.hpp"
#include "tessera/nn/transformer_options.hpp"
#include "tessera/tools/hf_config.hpp"

namespace tessera {

inline constexpr const char* kHfBertModelType = "megatron-bert";

struct HfBertShape : HfTransformerDims {
  // The sentence-order head: the pooler, seq_relationship and token-type embeddings (Tessera's
  // bert_binary_head). Import decides it by the file's tensors (cls.seq_relationship.weight).
  bool binary_head = true;
  // HF's one hidden_act for the MLP and the LM head's transform: "gelu" (erf; Tessera's
  // bias_gelu_fusion = false) or "gelu_new" (tanh; openai_gelu = true).
  std::string hidden_act = "gelu";
  bool layernorm_1p = false;  // export only: LayerNorm weights γ written as 1 + γ
  std::int64_t pad = -1;  // token id, -1: unknown
  std::string architecture() const { return binary_head ? "MegatronBertForPreTraining" : "MegatronBertForMaskedLM"; }
};

// The shape of a Tessera BERT (`binary_head`: its bert_binary_head): ConfigError naming the [model]
// key (and `source`, the config's file) that MegatronBert cannot express — post-LayerNorm residuals,
// grouped queries, heads of another width, RMSNorm, rope, and an MLP and LM head with different
// GELUs (Megatron-LM's default: the fused tanh form in the MLP, the exact one in the head).
HfBertShape hf_bert_shape_for_export(const TransformerOptions& o, bool binary_head, const std::string& source);

std::string hf_bert_config_json(const HfBertShape& shape, const std::map<std::string, std::string>& extra = {});

// Reads a megatron-bert config.json: FormatError naming `path` and the key for a setting Tessera's
// BERT has no equivalent of.
HfBertShape parse_hf_bert_config(const std::string& text, const std::string& path);

// The [model] section (TOML, with its header) of a Tessera BERT with this shape.
std::string tessera_bert_model_toml(const HfBertShape& shape);

// Tessera's tensors (whole, vocabulary rows cut to the real vocabulary, f32) under HF's names, in
// file order; and back (FormatError naming `where` and the tensor that is missing, misshapen or
// not a parameter). Without the binary head, export writes zero token-type embeddings (HF's model
// always adds row 0 of them), and import adds a MaskedLM file's row 0 to the position embeddings.
NamedTensors hf_bert_tensors_from_tessera(const HfBertShape& shape, const std::map<std::string, Tensor>& tessera);
std::map<std::string, Tensor> tessera_bert_tensors_from_hf(const HfBertShape& shape, std::map<std::string, Tensor> hf,
                                                           const std::string& where);

}  // namespace tessera
