// A model's tokenizer in a Hugging Face folder and back. Export copies the files the tokenizer read
// under HF's names (gpt2_bpe: vocab.json, merges.txt; hf_tokenizer: tokenizer.json; another
// plugin's files under their own names), writes a tokenizer_config.json for transformers, and
// describes the [tokenizer] section in config.json's "tessera_tokenizer" (plugin, settings, files),
// which a tokenizer without files (byte) needs to come back. Import reads that, or without it finds
// tokenizer.json (hf_tokenizer) or vocab.json + merges.txt (gpt2_bpe).
#pragma once
#include <filesystem>
#include <string>

#include "tessera/config.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

inline constexpr const char* kTesseraTokenizerKey = "tessera_tokenizer";

struct HfTokenizerFiles {
  std::string tessera_tokenizer_json;  // the "tessera_tokenizer" value
};
HfTokenizerFiles write_hf_tokenizer_files(const Config& config, const Tokenizer& tokenizer,
                                          const std::filesystem::path& folder, std::int64_t max_length);

struct ImportedTokenizer {
  std::string plugin;
  // The [tokenizer] section (with its header) naming the copies "tokenizer/<name>" as a saved
  // folder's config does, and the same naming them by their path under `dest` (to build it now).
  std::string toml, toml_absolute;
};
// Copies the tokenizer files of `hf_folder` into `dest`/tokenizer/. FormatError naming the folder
// (or config.json's key) when it has no tokenizer Tessera reads.
ImportedTokenizer import_hf_tokenizer(const std::filesystem::path& hf_folder, const std::string& config_json_text,
                                      const std::filesystem::path& dest);

}  // namespace tessera
