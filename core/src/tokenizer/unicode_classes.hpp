// The Unicode facts GPT-2's pre-tokenizer needs: UTF-8 decoding and whether a code point is a
// letter (\p{L}), a number (\p{N}), white space, or anything else. std::regex has no \p{..}, and
// no Debian package offers these tables to C++ without ICU's weight, so a compact generated table
// (unicode_classes.cpp, from gen_unicode_classes.js) is committed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tessera::unicode {

enum class CharClass : unsigned char { other = 0, letter = 1, number = 2, space = 3 };

CharClass char_class(char32_t cp);
const char* unicode_version();

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

// Class of the code point at s[i] and its length; invalid bytes count as `other`.
inline CharClass class_at(std::string_view s, std::size_t i, unsigned* len) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {  // ASCII fast path
    *len = 1;
    if ((b0 >= 'a' && b0 <= 'z') || (b0 >= 'A' && b0 <= 'Z')) return CharClass::letter;
    if (b0 >= '0' && b0 <= '9') return CharClass::number;
    if (b0 == ' ' || (b0 >= '\t' && b0 <= '\r')) return CharClass::space;
    return CharClass::other;
  }
  const Decoded d = decode_utf8(s, i);
  *len = d.len;
  return d.valid ? char_class(d.cp) : CharClass::other;
}

}  // namespace tessera::unicode
