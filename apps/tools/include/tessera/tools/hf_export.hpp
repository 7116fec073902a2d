// `tessera checkpoint export --to hf`: a Hugging Face model folder from a Tessera saved model of any
// layout (final weights, a checkpoint folder or a save folder's latest checkpoint; tensor-parallel
// shards joined and pipeline stages collected by load_saved_weights): config.json,
// model.safetensors (f32, bf16 or f16; vocabulary padding cut), the tokenizer's files (gpt2_bpe: vocab.json and
// merges.txt; hf_tokenizer: tokenizer.json) with a tokenizer_config.json. config.json also carries
// "tessera_tokenizer" (the [tokenizer] plugin and its settings) so that import rebuilds the same
// tokenizer, also one without files (byte).
#pragma once
#include <filesystem>
#include <string>

#include "tessera/dtype.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera {

struct HfExportResult {
  std::string architecture;
  std::size_t tensors = 0;
  // Multi-token prediction depths ([model] mtp_num_layers): tensors of the saved model no exported
  // architecture has, left out (the exported model predicts the next token as the saved one does).
  std::size_t mtp_tensors_left_out = 0;
};

// saved.config must name its plugins (the app's defaults applied). `architecture`: "" (choose) or
// gpt2, gpt_bigcode, llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe. `dtype`: the
// file's f32, bf16 or f16 (rounded to nearest even; config.json's torch_dtype says which). `out` must
// not exist or be empty (StagedFolder): the folder appears complete or not at all. ConfigError for a
// model that is not a GPT or does not fit the architecture.
HfExportResult export_hf(const SavedModel& saved, const std::filesystem::path& out, const std::string& architecture,
                         DType dtype = DType::f32);

}  // namespace tessera
