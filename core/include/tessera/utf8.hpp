// UTF-8 decoding that never fails: preprocess checks its input with it, and byte-level tokenizer
// plugins walk text with it (an invalid byte is one "character", so every byte is still covered);
// and encoding, for the tokenizers that rebuild text from code points.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace tessera::unicode {

struct Decoded {
  char32_t cp;
  unsigned len;  // bytes consumed, >= 1
  bool valid;
};

// Decodes the code point at s[i] (i < s.size()). An invalid or truncated sequence decodes as one
// byte with valid = false, so every byte is still covered (byte-level BPE keeps arbitrary bytes).
inline Decoded decode_utf8(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  unsigned len = b0 >= 0xF0 && b0 <= 0xF4 ? 4 : b0 >= 0xE0 ? (b0 < 0xF0 ? 3 : 0) : b0 >= 0xC2 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return {0xFFFD, 1, false};
  char32_t cp = len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (unsigned k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {0xFFFD, 1, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  // Reject overlong forms, surrogates and values past U+10FFFF.
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
    return {0xFFFD, 1, false};
  return {cp, len, true};
}

// Appends code point cp (at most U+10FFFF) as UTF-8.
inline void append_utf8(std::string& s, char32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace tessera::unicode
