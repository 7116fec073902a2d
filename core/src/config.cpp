// Config: loading entry points, declared-key bookkeeping and the unknown-key check.
#include "tessera/config.hpp"

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "closest_match.hpp"
#include "config_data.hpp"
#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

void ConfigData::declare_section(const std::string& section) {
  std::lock_guard lock(mutex_);
  declared_sections_.insert(section);
}

void ConfigData::declare_key(const std::string& section, const std::string& key) {
  std::lock_guard lock(mutex_);
  declared_sections_.insert(section);
  declared_keys_[section].insert(key);
}

bool ConfigData::section_declared(const std::string& section) const {
  std::lock_guard lock(mutex_);
  return declared_sections_.count(section) > 0;
}

std::set<std::string> ConfigData::declared_keys(const std::string& section) const {
  std::lock_guard lock(mutex_);
  auto it = declared_keys_.find(section);
  return it == declared_keys_.end() ? std::set<std::string>{} : it->second;
}

std::vector<std::string> ConfigData::declared_sections() const {
  std::lock_guard lock(mutex_);
  return {declared_sections_.begin(), declared_sections_.end()};
}

std::string ConfigData::origin(const std::string& section, const std::string& key) const {
  auto it = origins.find(key.empty() ? section : section + "." + key);
  return it == origins.end() ? source : it->second;
}

std::string toml_type_phrase(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

std::string toml_quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string toml_value_text(const toml::node& node) {
  std::string s;
  if (const auto* str = node.as_string()) {
    s = toml_quoted(str->get());  // as users write strings (toml++ would print 'literal' strings)
  } else {
    std::ostringstream os;
    node.visit([&](auto&& concrete) { os << concrete; });
    s = os.str();
  }
  for (char& c : s)
    if (c == '\n') c = ' ';
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

Config::Config() : data_(std::make_shared<ConfigData>()) {
  data_->source = "<empty>";
  data_->directory = ".";
}

Config::Config(std::shared_ptr<ConfigData> data) : data_(std::move(data)) {}

Config Config::load(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  auto data = std::make_shared<ConfigData>();
  resolve_config_file(*data, path, overrides);
  return Config(std::move(data));
}

Config Config::from_string(const std::string& toml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  auto data = std::make_shared<ConfigData>();
  data->source = source_name;
  data->directory = ".";
  resolve_config(*data, toml_text, overrides);
  return Config(std::move(data));
}

Config Config::with_default(const std::string& section, const std::string& key, const std::string& value,
                            const std::string& origin) const {
  auto data = std::make_shared<ConfigData>();
  data->root = data_->root;
  data->source = data_->source;
  data->directory = data_->directory;
  data->origins = data_->origins;
  toml::node* existing = data->root.get(section);
  if (!existing) {
    data->root.insert(section, toml::table{});
    data->origins[section] = origin;
    existing = data->root.get(section);
  }
  if (toml::table* t = existing->as_table(); t && !t->contains(key)) {  // a non-table is reported by its reader
    t->insert(key, value);
    data->origins[section + "." + key] = origin;
  }
  return Config(std::move(data));
}

Config Config::with_section_from(const Config& from, const std::string& name, const std::string& origin,
                                 const std::vector<std::string>& keep, std::vector<std::string>& changed) const {
  const auto theirs = [&](const std::string& key, bool ours_sets_it) {
    return !(ours_sets_it && std::find(keep.begin(), keep.end(), key) != keep.end());
  };
  return with_merged_section(from, name, origin, theirs, changed);
}

Config Config::with_keys_from(const Config& from, const std::string& name, const std::string& origin,
                              const std::vector<std::string>& take, std::vector<std::string>& changed) const {
  const auto theirs = [&](const std::string& key, bool) {
    return std::find(take.begin(), take.end(), key) != take.end();
  };
  return with_merged_section(from, name, origin, theirs, changed);
}

Config Config::with_merged_section(const Config& from, const std::string& name, const std::string& origin,
                                   const std::function<bool(const std::string&, bool)>& theirs_wins,
                                   std::vector<std::string>& changed) const {
  auto data = std::make_shared<ConfigData>();
  data->root = data_->root;
  data->source = data_->source;
  data->directory = data_->directory;
  data->origins = data_->origins;
  const toml::table empty;
  const toml::table* theirs = from.data_->root[name].as_table();
  const toml::table* ours = data_->root[name].as_table();
  if (!theirs) theirs = &empty;
  if (!ours) ours = &empty;
  const auto kept = [&](const std::string& key) { return !theirs_wins(key, ours->contains(key)); };
  toml::table merged;
  std::set<std::string> keys;
  for (auto&& [key, value] : *ours) keys.insert(std::string(key.str()));
  for (auto&& [key, value] : *theirs) keys.insert(std::string(key.str()));
  for (const std::string& key : keys) {
    const toml::node* mine = ours->get(key);
    const toml::node* chosen = kept(key) ? mine : theirs->get(key);
    if (chosen) merged.insert(key, *chosen);
    if (!kept(key)) {
      data->origins[name + "." + key] = origin;
      const auto whole = [](const toml::node* n) {  // the whole value (toml_value_text shortens it)
        std::ostringstream os;
        if (n) n->visit([&](auto&& concrete) { os << concrete; });
        return os.str();
      };
      if (!mine || !chosen || mine->type() != chosen->type() || whole(mine) != whole(chosen))
        changed.push_back(fmt::format("{}.{}: {} → {}", name, key, mine ? toml_value_text(*mine) : "unset",
                                      chosen ? toml_value_text(*chosen) : "unset"));
    }
  }
  data->root.insert_or_assign(name, std::move(merged));
  return Config(std::move(data));
}

ConfigSection Config::section(const std::string& name) const {
  data_->declare_section(name);
  return ConfigSection(data_, name);
}

bool Config::has_section(const std::string& name) const { return data_->root.contains(name); }

std::vector<std::string> Config::section_names() const {
  std::vector<std::string> out;
  for (auto&& [k, v] : data_->root) out.emplace_back(k.str());
  return out;
}

void Config::check_no_unknown_keys_in(const std::vector<std::string>& checked) const {
  for (const std::string& name : section_names())
    if (std::find(checked.begin(), checked.end(), name) == checked.end()) {
      ConfigSection s = section(name);
      for (const std::string& key : s.keys()) s.declare(key);
    }
  check_no_unknown_keys();
}

void Config::check_no_unknown_keys(const std::vector<std::string>& not_yet) const {
  // Collect every problem so that one run reports all typos at once.
  std::vector<std::string> problems;
  const std::vector<std::string> sections = data_->declared_sections();
  for (auto&& [sec_key, sec_node] : data_->root) {
    const std::string section(sec_key.str());
    if (std::find(not_yet.begin(), not_yet.end(), section) != not_yet.end()) continue;
    const std::string where = data_->origin(section);
    const std::string in = where == "--set" ? "(from --set)" : "in " + where;
    if (!data_->section_declared(section)) {
      problems.push_back(fmt::format("unknown section [{}] {}; known sections: {}{}", plain_or_quoted(section), in,
                                     sections.empty() ? "none" : fmt::format("{}", fmt::join(sections, ", ")),
                                     detail::did_you_mean(section, sections)));
      continue;
    }
    const std::set<std::string> declared = data_->declared_keys(section);
    const std::vector<std::string> accepted(declared.begin(), declared.end());
    for (auto&& [key_, value] : *sec_node.as_table()) {
      const std::string key(key_.str());
      if (declared.count(key)) continue;
      const std::string key_where = data_->origin(section, key);
      problems.push_back(fmt::format(
          "unknown key '{}.{}' {}; [{}] accepts: {}{}", plain_or_quoted(section), plain_or_quoted(key),
          key_where == "--set" ? "(from --set)" : "in " + key_where, section,
          accepted.empty() ? "no keys" : fmt::format("{}", fmt::join(accepted, ", ")),
          detail::did_you_mean(key, accepted)));
    }
  }
  if (problems.empty()) return;
  std::string msg = problems.front();
  constexpr std::size_t kShown = 20;  // a file of garbage keys must not make a megabyte message
  for (std::size_t i = 1; i < std::min(problems.size(), kShown); ++i) msg += "\n" + problems[i];
  if (problems.size() > kShown) msg += fmt::format("\n… and {} more unknown keys", problems.size() - kShown);
  throw ConfigError(msg);
}

const std::string& Config::source() const { return data_->source; }

std::filesystem::path Config::directory() const { return data_->directory; }

}  // namespace tessera
