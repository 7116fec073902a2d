// The Unicode facts GPT-2's pre-tokenizer needs beyond UTF-8 decoding (tessera/utf8.hpp): whether a
// code point is a letter (\p{L}), a number (\p{N}), white space, or anything else. std::regex has no
// \p{..}, and no Debian package offers these tables to C++ without ICU's weight, so a compact
// generated table (unicode_classes.cpp, from gen_unicode_classes.js) is committed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tessera/utf8.hpp"

namespace tessera::unicode {

enum class CharClass : unsigned char { other = 0, letter = 1, number = 2, space = 3 };

CharClass char_class(char32_t cp);
const char* unicode_version();

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
