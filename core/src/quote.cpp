#include "tessera/quote.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace tessera {

namespace {

// Length of the well-formed UTF-8 sequence at text[i] encoding a printable code point (U+00A0 and
// above, so no C1 control), or 0.
std::size_t printable_utf8_length(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = b(0);
  const std::size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (len == 0 || c >= 0xF5 || i + len > text.size()) return 0;
  std::uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
  if (overlong || cp < 0xA0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

std::string quote_untrusted(std::string_view text, std::size_t max_chars) {
  std::string out = "\"";
  std::size_t shown = 0;
  for (; shown < text.size() && out.size() < max_chars + 1; ++shown) {
    const auto c = static_cast<unsigned char>(text[shown]);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '"' || c == '\\') (out += '\\') += static_cast<char>(c);
    else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else if (const std::size_t len = printable_utf8_length(text, shown)) {
      out.append(text.substr(shown, len));
      shown += len - 1;
    } else out += fmt::format("\\x{:02x}", c);
  }
  out += '"';
  if (shown < text.size()) out += fmt::format("… ({} bytes)", text.size());
  return out;
}

std::string plain_or_quoted(std::string_view text, std::size_t max_chars) {
  if (text.size() <= max_chars) {
    bool plain = true;
    for (std::size_t i = 0; i < text.size() && plain; ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c >= 0x20 && c < 0x7f) continue;
      const std::size_t len = printable_utf8_length(text, i);
      if (len == 0) plain = false;
      else i += len - 1;
    }
    if (plain) return std::string(text);
  }
  return quote_untrusted(text, max_chars);
}

}  // namespace tessera
