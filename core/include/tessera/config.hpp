// Run configuration: TOML files (toml++) with `include = "base.toml"` composition and
// `--set section.key=value` overrides, validated in one place before any work starts.
//
// Consumers read keys through ConfigSection's typed getters; each read marks the key as known.
// After every plugin has been built, Config::check_no_unknown_keys() turns any key that nobody
// read into an error naming the key, the file it came from and the keys that section accepts.
// Type and range errors name the file, the key and what was expected.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tessera {

class ConfigData;  // pimpl over toml++ (toml++ stays out of public headers)

// A view of one [section]. Copies share the Config's state, so keys a plugin reads through its copy
// count as declared for Config::check_no_unknown_keys().
class ConfigSection {
 public:
  ConfigSection(std::shared_ptr<ConfigData> data, std::string name);
  const std::string& name() const { return name_; }
  // Whether the key is set; asking counts as declaring it.
  bool has(const std::string& key) const;
  // Keys present in this section (sorted), declared or not.
  std::vector<std::string> keys() const;
  // Whether the key is set to a string; unlike has(), this does not declare it.
  bool is_string(const std::string& key) const;
  // Whether the key is set to an array (a key that takes a number or a list); does not declare it.
  bool is_array(const std::string& key) const;

  // Required (throw ConfigError when missing) and defaulted forms. Integers accept TOML
  // integers only; floats accept integers and floats. Ranges are inclusive.
  std::int64_t get_int(const std::string& key) const;
  std::int64_t get_int(const std::string& key, std::int64_t fallback,
                       std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback,
                   double min = -1e308, double max = 1e308) const;
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  // A string that must be one of `allowed` (the error lists them).
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& allowed) const;
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& fallback) const;
  // Required: an array of TOML integers.
  std::vector<std::int64_t> get_int_list(const std::string& key) const;
  // Marks a key as known without reading it (for keys read by another component).
  void declare(const std::string& key) const;

  // "file.toml" or "--set" — where a key's value came from (for messages); for a key that is not
  // set, the top-level config file.
  std::string origin(const std::string& key) const;

 private:
  std::shared_ptr<ConfigData> data_;
  std::string name_;
};

class Config {
 public:
  // An empty configuration (every getter returns its fallback); source() is "<empty>".
  Config();
  // Parses `path` (following `include`), then applies overrides "section.key=value" whose value is
  // parsed as a TOML value (42, 1e-3, true, "text"; a bare word is taken as a string).
  static Config load(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});
  static Config from_string(const std::string& toml_text, const std::string& source_name = "<string>",
                            const std::vector<std::string>& overrides = {});

  // A copy in which section.key, where it is not set, is the string `value`, recorded as coming from
  // `origin` (for messages). The app fills in its default plugins this way. Keys declared so far are
  // not carried over.
  Config with_default(const std::string& section, const std::string& key, const std::string& value,
                      const std::string& origin) const;

  // A copy in which section `name` is `from`'s (its keys recorded as coming from `origin`), except
  // the keys in `keep`, which stay this config's where this config sets them. Each key whose value
  // changes is reported in `changed` as "name.key: old → new" ("unset" for a side without it). Keys
  // declared so far are not carried over.
  Config with_section_from(const Config& from, const std::string& name, const std::string& origin,
                           const std::vector<std::string>& keep, std::vector<std::string>& changed) const;
  // The other way round: a copy whose section `name` is this config's except the keys in `take`,
  // which are `from`'s (unset where `from` does not set them), reported as above.
  Config with_keys_from(const Config& from, const std::string& name, const std::string& origin,
                        const std::vector<std::string>& take, std::vector<std::string>& changed) const;

  // Asking for a section declares it (an empty or absent section is then not an error).
  ConfigSection section(const std::string& name) const;
  bool has_section(const std::string& name) const;
  std::vector<std::string> section_names() const;
  // Throws ConfigError for any section or key that no consumer declared. Sections in `not_yet` are
  // left out: their consumer has not run yet (the trainer checks everything else before the data
  // plugin opens any file, then everything).
  void check_no_unknown_keys(const std::vector<std::string>& not_yet = {}) const;
  // The same for `checked` sections only; every other section's keys are taken as they are (a saved
  // model's config holds the training run's sections, which a tool that reads it does not use).
  void check_no_unknown_keys_in(const std::vector<std::string>& checked) const;
  // The resolved configuration as TOML text (printed at start, saved beside outputs).
  std::string dump() const;
  // The top-level file as given to load() (or from_string's source_name).
  const std::string& source() const;
  // The top-level file's folder ("." for from_string and an empty config). Only `include` names
  // are resolved against a folder (the including file's); paths given as values (data.data_path,
  // tokenizer.vocab_file, checkpoint.save, …) are used as written, i.e. relative to the working
  // directory, as Megatron-LM's arguments (docs/configs.md).
  std::filesystem::path directory() const;

 private:
  explicit Config(std::shared_ptr<ConfigData> data);
  // with_section_from and with_keys_from: section `name` with `from`'s value of each key for which
  // `theirs(key, ours_sets_it)` holds.
  Config with_merged_section(const Config& from, const std::string& name, const std::string& origin,
                             const std::function<bool(const std::string&, bool)>& theirs,
                             std::vector<std::string>& changed) const;
  std::shared_ptr<ConfigData> data_;
};

}  // namespace tessera
