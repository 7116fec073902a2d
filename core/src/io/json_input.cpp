#include "tessera/io/json_input.hpp"

#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera::detail {

namespace {

// Deepest nesting of arrays/objects in `text`, stopping as soon as it passes `limit` (strings skipped).
bool nesting_within(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// Bounded rendering: at most `budget` characters and 3 levels, never the recursion of dump().
void render(const nlohmann::json& v, std::string& out, std::size_t budget, int depth) {
  if (out.size() >= budget) return;
  if (v.is_array() || v.is_object()) {
    const bool arr = v.is_array();
    out += arr ? '[' : '{';
    if (depth >= 3 && !v.empty()) {
      out += "…";
    } else {
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (out.size() >= budget) {
          out += "…";
          return;
        }
        if (!first) out += ", ";
        first = false;
        if (!arr) out += quote_untrusted(it.key(), 20) + ": ";
        render(*it, out, budget, depth + 1);
      }
    }
    out += arr ? ']' : '}';
  } else if (v.is_string()) {
    out += quote_untrusted(v.get_ref<const std::string&>(), 30);
  } else {
    out += v.dump();  // a scalar: number, bool or null
  }
}

}  // namespace

nlohmann::json parse_untrusted_json(std::string_view text, const std::string& what, int max_depth) {
  if (!nesting_within(text, max_depth))
    throw FormatError(fmt::format("{}: JSON nested deeper than {} levels (not a file Tessera writes or reads)", what,
                                  max_depth));
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(fmt::format("{}: invalid JSON at byte {}: {}", what, e.byte, quote_untrusted(e.what(), 160)));
  } catch (const nlohmann::json::exception& e) {  // out_of_range 406: a number past double ("1e400")
    throw FormatError(fmt::format("{}: invalid JSON: {}", what, quote_untrusted(e.what(), 160)));
  }
}

std::string describe_json(const nlohmann::json& value) {
  std::string out = std::string(value.type_name()) + " ";
  render(value, out, out.size() + 60, 0);
  return out;
}

}  // namespace tessera::detail
