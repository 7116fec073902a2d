// Reading config files: `include = "base.toml"` composition and `--set section.key=value` overrides.
//
// Includes are resolved depth first: a file's includes are merged in the order listed, then the
// file's own values on top, so the including file always wins. Tables merge key by key (a file can
// change one key of a section it included). Each key remembers which file set it last, so later
// errors can name the file to edit.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "config_data.hpp"
#include "tessera/io/input_file.hpp"
#include "tessera/error.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

toml::table parse_toml(std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: TOML syntax error: {}", name, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
}

std::string read_text(const fs::path& path, const std::string& display, const std::string& included_from) {
  try {
    return read_whole_file(path, "config file", kMaxConfigBytes);
  } catch (const FormatError& e) {  // regular files only, at most kMaxConfigBytes: never a FIFO or /dev/zero
    if (included_from.empty()) throw ConfigError(fmt::format("cannot read config file '{}': {}", display, e.what()));
    throw ConfigError(fmt::format("cannot read config file '{}' (included from {}): {}", display, included_from, e.what()));
  }
}

// Copies src over dst; tables present in both merge key by key.
void merge_into(toml::table& dst, const toml::table& src) {
  for (auto&& [key, value] : src) {
    toml::node* existing = dst.get(key.str());
    if (existing && existing->is_table() && value.is_table()) {
      merge_into(*existing->as_table(), *value.as_table());
      continue;
    }
    value.visit([&, k = key.str()](auto&& concrete) { dst.insert_or_assign(k, concrete); });
  }
}

std::vector<std::string> take_includes(toml::table& table, const std::string& name) {
  std::vector<std::string> out;
  toml::node* inc = table.get("include");
  if (!inc) return out;
  const auto bad = [&] {
    return ConfigError(fmt::format("{}: include must be a file name or a list of file names, got {} ({})", name,
                                   toml_type_phrase(*inc), toml_value_text(*inc)));
  };
  if (auto s = inc->value<std::string>(); s && inc->is_string()) {
    out.push_back(*s);
  } else if (auto* arr = inc->as_array()) {
    for (auto& item : *arr) {
      if (!item.is_string()) throw bad();
      out.push_back(*item.value<std::string>());
    }
  } else {
    throw bad();
  }
  table.erase("include");
  return out;
}

struct Resolver {
  ConfigData& data;
  std::vector<fs::path> stack;        // canonical paths of the files being read, for cycle detection
  std::vector<std::string> names;     // the same files as shown to the user

  // Merges `text` (named `name`, in folder `dir`) and everything it includes into data.root.
  void add(const std::string& text, const std::string& name, const fs::path& dir, const fs::path& dir_shown) {
    toml::table table = parse_toml(text, name);
    for (const std::string& inc : take_includes(table, name)) {
      const fs::path path = dir / inc;
      const std::string shown = (dir_shown / inc).lexically_normal().string();
      std::error_code ec;
      fs::path canonical = fs::weakly_canonical(path, ec);
      if (ec) canonical = path.lexically_normal();
      if (std::find(stack.begin(), stack.end(), canonical) != stack.end()) {
        std::string chain;
        const auto first = std::find(stack.begin(), stack.end(), canonical) - stack.begin();
        for (std::size_t i = static_cast<std::size_t>(first); i < names.size(); ++i) chain += names[i] + " -> ";
        throw ConfigError(fmt::format("include cycle: {}{}", chain, shown));
      }
      const std::string inc_text = read_text(path, shown, name);
      stack.push_back(canonical);
      names.push_back(shown);
      add(inc_text, shown, path.parent_path(), fs::path(shown).parent_path());
      stack.pop_back();
      names.pop_back();
    }
    for (auto&& [key, value] : table) {
      if (value.is_array_of_tables())
        throw ConfigError(fmt::format("{}: [[{}]] is an array of tables; Tessera's sections are single tables: write "
                                      "[{}]",
                                      name, key.str(), key.str()));
      if (!value.is_table())
        throw ConfigError(fmt::format("{}: key '{}' is outside any section; put it under a [section] header "
                                      "such as [training]",
                                      name, key.str()));
      const std::string section(key.str());
      data.origins[section] = name;
      for (auto&& [k, v] : *value.as_table()) data.origins[section + "." + std::string(k.str())] = name;
    }
    merge_into(data.root, table);
  }
};

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

bool is_bare_key(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
}

// "section.key=value": the value is read as TOML (42, 1e-3, true, "text", [1, 2]); anything that is
// not TOML but does not look like an attempt at it (a bare word, a path) is taken as a string.
void apply_override(ConfigData& data, const std::string& text) {
  const std::string usage = "write --set section.key=value, e.g. --set model.num_layers=12";
  const auto eq = text.find('=');
  if (eq == std::string::npos) throw ConfigError(fmt::format("--set '{}': no '='; {}", text, usage));
  const std::string path = trim(text.substr(0, eq));
  const std::string value = trim(text.substr(eq + 1));
  const auto dot = path.find('.');
  if (dot == std::string::npos)
    throw ConfigError(fmt::format("--set '{}': '{}' names no section; {}", text, path, usage));
  const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  if (!is_bare_key(section) || !is_bare_key(key))
    throw ConfigError(fmt::format("--set '{}': '{}' is not section.key (letters, digits, '_' and '-' only); {}",
                                  text, path, usage));
  if (value.empty())
    throw ConfigError(fmt::format("--set '{}': no value after '='; write {}=\"\" for an empty string", text, path));

  toml::table patch;
  bool parsed = false;
  try {
    patch = toml::parse(fmt::format("[{}]\n{} = {}\n", section, key, value), std::string_view("--set"));
    const toml::table* sec = patch.get_as<toml::table>(section);
    parsed = patch.size() == 1 && sec && sec->size() == 1 && sec->contains(key);
  } catch (const toml::parse_error& e) {
    if (std::string_view("\"'[{").find(value.front()) != std::string_view::npos)
      throw ConfigError(fmt::format("--set '{}': {} is not a valid TOML value: {}", text, value, e.description()));
  }
  if (!parsed) patch = toml::table{{section, toml::table{{key, value}}}};

  if (toml::node* existing = data.root.get(section); existing && !existing->is_table())
    throw ConfigError(fmt::format("--set '{}': {} is not a section", text, section));
  if (!data.root.contains(section)) data.origins[section] = "--set";
  data.origins[path] = "--set";
  merge_into(data.root, patch);
}

}  // namespace

void resolve_config(ConfigData& data, const std::string& text, const std::vector<std::string>& overrides) {
  Resolver r{data, {}, {data.source}};
  std::error_code ec;
  const fs::path self = fs::weakly_canonical(data.directory / fs::path(data.source).filename(), ec);
  r.stack.push_back(ec ? fs::path(data.source) : self);
  r.add(text, data.source, data.directory, fs::path(data.source).parent_path());
  for (const auto& o : overrides) apply_override(data, o);
}

void resolve_config_file(ConfigData& data, const fs::path& path, const std::vector<std::string>& overrides) {
  data.source = path.string();
  data.directory = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  resolve_config(data, read_text(path, data.source, ""), overrides);
}

}  // namespace tessera
