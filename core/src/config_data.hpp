// The state behind Config and every ConfigSection copied from it: the resolved TOML tree, where each
// value came from, and which sections and keys consumers have declared. Private to core so that
// toml++ stays out of public headers.
#pragma once
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace tessera {

class ConfigData {
 public:
  toml::table root;     // sections only: include resolved, overrides applied
  std::string source;   // top-level file as given, or from_string's name
  std::filesystem::path directory;
  // "section" and "section.key" → the file that set it last, or "--set".
  std::map<std::string, std::string> origins;

  void declare_section(const std::string& section);
  void declare_key(const std::string& section, const std::string& key);
  bool section_declared(const std::string& section) const;
  std::set<std::string> declared_keys(const std::string& section) const;
  std::vector<std::string> declared_sections() const;

  // Where a value came from, for messages: "configs/gpt/tiny.toml" or "--set".
  std::string origin(const std::string& section, const std::string& key = "") const;

 private:
  // Plugins may be built on several threads; declaring is the only mutation after load.
  mutable std::mutex mutex_;
  std::set<std::string> declared_sections_;
  std::map<std::string, std::set<std::string>> declared_keys_;
};

// Builds the resolved tree: follows includes from `text` (named `source_name`, includes resolved
// against `directory`), then applies the --set overrides.
void resolve_config(ConfigData& data, const std::string& text, const std::vector<std::string>& overrides);
void resolve_config_file(ConfigData& data, const std::filesystem::path& path,
                         const std::vector<std::string>& overrides);

// "an integer", "a string", ... for type errors.
std::string toml_type_phrase(const toml::node& node);
// A TOML basic string: double quotes, escapes for quotes, backslashes and control characters.
std::string toml_quoted(std::string_view text);
// The value as TOML writes it ("twelve" quoted, 1e-3 as 0.001), shortened for messages.
std::string toml_value_text(const toml::node& node);

}  // namespace tessera
