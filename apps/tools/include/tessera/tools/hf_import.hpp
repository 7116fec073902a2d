// `tessera checkpoint import --from hf`: a Tessera saved model (the folder `tessera train` writes
// with [checkpoint] save: config.toml, model.safetensors, tokenizer/) from a Hugging Face model
// folder of a gpt2, gpt_bigcode or llama model, read from safetensors only (model.safetensors or a
// sharded model.safetensors.index.json; pickles — pytorch_model.bin — are refused, never opened).
// bf16/f16 weights are widened to f32. `tessera generate --load OUT` then samples from it,
// `tessera train --set checkpoint.load=OUT` trains from its weights (final weights only: iteration 1,
// a fresh optimizer, any layout) and `tessera checkpoint export` gives the same tensors back, byte for
// byte (f32 files).
#pragma once
#include <filesystem>
#include <string>

namespace tessera {

struct HfImportResult {
  std::string architecture, tokenizer_plugin;
  std::size_t tensors = 0;
};

// The written folder is checked by building the model from its config.toml and loading its weights
// (as generate does). FormatError naming the file or key for an unknown architecture, a
// missing or misshapen tensor, a missing shard or tokenizer; `out` is written completely or not at
// all (StagedFolder).
HfImportResult import_hf(const std::filesystem::path& folder, const std::filesystem::path& out);

}  // namespace tessera
