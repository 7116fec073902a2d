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

// Plugin `plugin` from a [tokenizer] section with these other keys (TOML lines), named `source` in
// messages; its unknown keys are errors, as in a run's config.
inline PluginPtr<Tokenizer> make_tokenizer_with_keys(const std::string& plugin, const std::string& keys,
                                                     const std::string& source = "test tokenizer") {
  const Config config = Config::from_string(fmt::format("[tokenizer]\nplugin = \"{}\"\n{}", plugin, keys), source);
  auto tokenizer = build_tokenizer(config);
  config.check_no_unknown_keys();
  return tokenizer;
}

inline PluginPtr<Tokenizer> make_tokenizer(const std::string& plugin, const std::string& vocab_file = "",
                                           const std::string& merges_file = "", bool parse_special_tokens = false) {
  std::string keys;
  if (!vocab_file.empty()) keys += fmt::format("vocab_file = '{}'\n", vocab_file);
  if (!merges_file.empty()) keys += fmt::format("merges_file = '{}'\n", merges_file);
  if (parse_special_tokens) keys += "parse_special_tokens = true\n";
  return make_tokenizer_with_keys(plugin, keys);
}

}  // namespace tessera::test
