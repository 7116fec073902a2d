// ConfigSection's typed getters. Every read declares the key (see Config::check_no_unknown_keys), and
// every error names the key, the file it came from and what was expected.
#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>

#include "closest_match.hpp"
#include "config_data.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

// "model.num_layers in configs/gpt/tiny.toml" or "model.num_layers (from --set)".
std::string where(const ConfigData& d, const std::string& section, const std::string& key) {
  const std::string origin = d.origin(section, key);
  return origin == "--set" ? fmt::format("{}.{} (from --set)", section, key)
                           : fmt::format("{}.{} in {}", section, key, origin);
}

// Why a --set value meant as a number stayed a string: TOML wants a digit on both sides of a
// decimal point, and its integers are 64-bit.
std::string number_hint(const toml::node& node) {
  if (!node.is_string()) return "";
  static const std::regex loose_float(R"([+-]?(\.[0-9]+|[0-9]+\.)([eE][+-]?[0-9]+)?)");
  static const std::regex long_integer(R"([+-]?[0-9]{19,})");
  const std::string& text = node.as_string()->get();
  if (std::regex_match(text, loose_float))
    return "; a TOML number needs a digit on both sides of its point (0.001, 1.0)";
  if (std::regex_match(text, long_integer)) return "; it is beyond the 64-bit integers TOML has";
  return "";
}

ConfigError type_error(const ConfigData& d, const std::string& section, const std::string& key,
                       const std::string& expected, const toml::node& node) {
  return ConfigError(fmt::format("{}: expected {}, got {} ({}){}", where(d, section, key), expected,
                                 toml_type_phrase(node), toml_value_text(node), number_hint(node)));
}

template <typename T>
std::string bound_text(T v) {
  // The getters' default bounds mean "no bound".
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isinf(v) || v <= -1e308 || v >= 1e308) return v < 0 ? "-inf" : "inf";
  } else {
    if (v == std::numeric_limits<T>::min()) return "-inf";
    if (v == std::numeric_limits<T>::max()) return "inf";
  }
  return fmt::format("{}", v);
}

template <typename T>
void check_range(const ConfigData& d, const std::string& section, const std::string& key, T v, T min, T max) {
  if constexpr (std::is_floating_point_v<T>) {
    // The default bounds (±1e308) stand for "none": `x = inf` in a file is then accepted.
    if (min <= -1e308) min = -std::numeric_limits<T>::infinity();
    if (max >= 1e308) max = std::numeric_limits<T>::infinity();
  }
  if (!(v >= min && v <= max))  // written so that NaN is out of range
    throw ConfigError(fmt::format("{}: {} is out of range [{}, {}]", where(d, section, key), v, bound_text(min),
                                  bound_text(max)));
}

}  // namespace

ConfigSection::ConfigSection(std::shared_ptr<ConfigData> data, std::string name)
    : data_(std::move(data)), name_(std::move(name)) {}

// Declares the key and returns its node, or nullptr when the key is not set.
static const toml::node* find(ConfigData& d, const std::string& section, const std::string& key) {
  d.declare_key(section, key);
  const toml::table* t = d.root.get_as<toml::table>(section);
  return t ? t->get(key) : nullptr;
}

static ConfigError missing(const ConfigData& d, const std::string& section, const std::string& key) {
  return ConfigError(fmt::format("missing required key {0}.{1}: add `{1} = ...` under [{0}] in {2} "
                                 "(or pass --set {0}.{1}=...)",
                                 section, key, d.source));
}

bool ConfigSection::has(const std::string& key) const { return find(*data_, name_, key) != nullptr; }

std::vector<std::string> ConfigSection::keys() const {
  std::vector<std::string> out;
  if (const toml::table* t = data_->root.get_as<toml::table>(name_))
    for (auto&& [k, v] : *t) out.emplace_back(k.str());
  return out;
}

bool ConfigSection::is_string(const std::string& key) const {
  const toml::table* t = data_->root.get_as<toml::table>(name_);
  const toml::node* n = t ? t->get(key) : nullptr;
  return n && n->is_string();
}

bool ConfigSection::is_array(const std::string& key) const {
  const toml::table* t = data_->root.get_as<toml::table>(name_);
  const toml::node* n = t ? t->get(key) : nullptr;
  return n && n->is_array();
}

std::int64_t ConfigSection::get_int(const std::string& key) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) throw missing(*data_, name_, key);
  if (!n->is_integer()) throw type_error(*data_, name_, key, "an integer", *n);
  return n->as_integer()->get();
}

std::int64_t ConfigSection::get_int(const std::string& key, std::int64_t fallback, std::int64_t min,
                                    std::int64_t max) const {
  if (!has(key)) return fallback;
  const std::int64_t v = get_int(key);
  check_range(*data_, name_, key, v, min, max);
  return v;
}

double ConfigSection::get_float(const std::string& key) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) throw missing(*data_, name_, key);
  // `lr = 1` is a float a user meant; integers are accepted where floats are expected.
  if (n->is_integer()) return static_cast<double>(n->as_integer()->get());
  if (!n->is_floating_point()) throw type_error(*data_, name_, key, "a float", *n);
  return n->as_floating_point()->get();
}

double ConfigSection::get_float(const std::string& key, double fallback, double min, double max) const {
  if (!has(key)) return fallback;
  const double v = get_float(key);
  check_range(*data_, name_, key, v, min, max);
  return v;
}

bool ConfigSection::get_bool(const std::string& key) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) throw missing(*data_, name_, key);
  if (!n->is_boolean()) throw type_error(*data_, name_, key, "a boolean (true or false)", *n);
  return n->as_boolean()->get();
}

bool ConfigSection::get_bool(const std::string& key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}

std::string ConfigSection::get_string(const std::string& key) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) throw missing(*data_, name_, key);
  if (!n->is_string()) throw type_error(*data_, name_, key, "a string", *n);
  return n->as_string()->get();
}

std::string ConfigSection::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

std::string ConfigSection::get_choice(const std::string& key, const std::string& fallback,
                                      const std::vector<std::string>& allowed) const {
  const std::string v = get_string(key, fallback);
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    throw ConfigError(fmt::format("{}: '{}' is not one of: {}{}", where(*data_, name_, key), plain_or_quoted(v),
                                  fmt::join(allowed, ", "), detail::did_you_mean(v, allowed)));
  return v;
}

std::vector<std::string> ConfigSection::get_string_list(const std::string& key,
                                                        const std::vector<std::string>& fallback) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) return fallback;
  const toml::array* arr = n->as_array();
  if (!arr) throw type_error(*data_, name_, key, "an array of strings", *n);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& item = *arr->get(i);
    if (!item.is_string())
      throw ConfigError(fmt::format("{}: expected an array of strings, but item {} is {} ({})",
                                    where(*data_, name_, key), i, toml_type_phrase(item), toml_value_text(item)));
    out.push_back(item.as_string()->get());
  }
  return out;
}

std::vector<std::int64_t> ConfigSection::get_int_list(const std::string& key) const {
  const toml::node* n = find(*data_, name_, key);
  if (!n) throw ConfigError(fmt::format("{}: missing", where(*data_, name_, key)));
  const toml::array* arr = n->as_array();
  if (!arr) throw type_error(*data_, name_, key, "an array of integers", *n);
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& item = *arr->get(i);
    if (!item.is_integer())
      throw ConfigError(fmt::format("{}: expected an array of integers, but item {} is {} ({})",
                                    where(*data_, name_, key), i, toml_type_phrase(item), toml_value_text(item)));
    out.push_back(item.as_integer()->get());
  }
  return out;
}

void ConfigSection::declare(const std::string& key) const { data_->declare_key(name_, key); }

std::string ConfigSection::origin(const std::string& key) const { return data_->origin(name_, key); }

}  // namespace tessera
