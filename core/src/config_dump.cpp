// Config::dump(): the resolved configuration as TOML.
//
// Written by hand rather than with toml++'s formatter, which prints floats with 17 digits
// (lr = 3e-4 comes out as 0.00029999999999999997): fmt's shortest round-trip form keeps the dump
// readable and still exact, so a saved config reloads to the same values.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "config_data.hpp"
#include "tessera/config.hpp"

namespace tessera {

namespace {

std::string key_text(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
  if (bare) return std::string(key);
  return toml_quoted(key);
}

std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  std::string s = fmt::format("{}", v);
  // "5" would read back as an integer.
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

void write_value(std::ostream& os, const toml::node& node) {
  if (const auto* f = node.as_floating_point()) {
    os << float_text(f->get());
  } else if (const auto* arr = node.as_array()) {
    os << '[';
    for (std::size_t i = 0; i < arr->size(); ++i) {
      os << (i ? ", " : "");
      write_value(os, *arr->get(i));
    }
    os << ']';
  } else if (const auto* tbl = node.as_table()) {
    os << '{';
    bool first = true;
    for (auto&& [k, v] : *tbl) {
      os << (first ? " " : ", ") << key_text(k.str()) << " = ";
      write_value(os, v);
      first = false;
    }
    os << (first ? "}" : " }");
  } else if (node.is_string()) {
    os << toml_quoted(node.as_string()->get());
  } else {
    node.visit([&](auto&& concrete) { os << concrete; });  // integers, booleans, dates, times
  }
}

}  // namespace

std::string Config::dump() const {
  std::ostringstream os;
  bool first = true;
  for (auto&& [section, node] : data_->root) {
    os << (first ? "" : "\n") << '[' << key_text(section.str()) << "]\n";
    first = false;
    for (auto&& [k, v] : *node.as_table()) {
      os << key_text(k.str()) << " = ";
      write_value(os, v);
      os << '\n';
    }
  }
  return os.str();
}

}  // namespace tessera
