// The Unicode facts BERT's BasicTokenizer takes from Python (unicodedata and str methods), as tables
// generated from Python by gen_bert_unicode.py into bert_unicode.cpp (committed, like
// tokenizer_gpt2_bpe/unicode_classes.cpp): no Debian package offers them to C++ without ICU, and ICU's
// Unicode version would differ from the Python that defines the reference tokens.
#pragma once
#include <string>

namespace tessera::bert_unicode {

enum CharFlag : unsigned {
  kControl = 1,         // category C* except \t \n \r: dropped by BERT's _clean_text
  kWhitespace = 2,      // Zs, ' ', \t, \n, \r: become ' ' in _clean_text
  kPunctuation = 4,     // P*, and every ASCII symbol that is not a letter or digit
  kNonspacingMark = 8,  // Mn: dropped by accent stripping (after NFD)
  kPySpace = 16,        // str.isspace(): what str.split() splits words on
  kCaseIgnorable = 32,  // for the final-sigma rule of str.lower()
  kCased = 64,          // (only meaningful where kCaseIgnorable is not set)
};

const char* unicode_version();
// CharFlag bits of a code point.
unsigned flags(char32_t cp);
// Canonical combining class (0 for starters).
unsigned combining_class(char32_t cp);
// Appends Python's str.lower() of one code point, Final_Sigma aside (U+03A3 gives U+03C3).
void append_lower(char32_t cp, std::u32string& out);
// Appends the full canonical decomposition of one code point (itself when it has none); NFD is this
// for every code point followed by the canonical ordering of combining marks.
void append_decomposition(char32_t cp, std::u32string& out);

}  // namespace tessera::bert_unicode
