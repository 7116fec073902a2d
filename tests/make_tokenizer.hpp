// Tokenizers for tests, built through their plugins from a [tokenizer] section exactly as train,
// preprocess and generate build them. A test that uses one depends on the plugin's target
// (tessera_tokenizer_byte, tessera_tokenizer_gpt2_bpe) so that TESSERA_PLUGIN_PATH finds it.
#pragma once
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/train/components.hpp"

namespace tessera::test {

inline PluginPtr<Tokenizer> make_tokenizer(const std::string& plugin, const std::string& vocab_file = "",
                                           const std::string& merges_file = "", bool parse_special_tokens = false) {
  std::string text = fmt::format("[tokenizer]\nplugin = \"{}\"\n", plugin);
  if (!vocab_file.empty()) text += fmt::format("vocab_file = '{}'\n", vocab_file);
  if (!merges_file.empty()) text += fmt::format("merges_file = '{}'\n", merges_file);
  if (parse_special_tokens) text += "parse_special_tokens = true\n";
  const Config config = Config::from_string(text, "test tokenizer");
  auto tokenizer = build_tokenizer(config);
  config.check_no_unknown_keys();
  return tokenizer;
}

}  // namespace tessera::test
