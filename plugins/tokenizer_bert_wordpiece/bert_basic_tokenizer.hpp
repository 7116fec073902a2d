// BERT's BasicTokenizer (Google's tokenization.py, copied by Megatron-LM as bert_tokenization.py):
// the words WordPiece then cuts into pieces. In order:
//   1. clean: drop NUL, U+FFFD (and so invalid UTF-8 bytes) and control characters (category C*
//      other than \t \n \r); every whitespace character (Zs, \t \n \r) becomes a space;
//   2. put spaces around CJK ideographs, so each is a word of its own;
//   3. split at white space (Python's str.split());
//   4. per word: lower-case (Python's str.lower(), final sigma included) when lower_case, then, when
//      strip_accents, NFD and drop the non-spacing marks (Mn);
//   5. split each punctuation character (P*, and ASCII symbols such as $ ^ `) off as a word.
// Unicode classes come from bert_unicode.hpp (Python's unicodedata 14.0).
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace tessera {

struct BertBasicOptions {
  bool lower_case = true;
  bool strip_accents = true;  // Megatron: always together with lower_case (HF: its own switch)
};

// Calls `word` with each word of `text` (code points), in order.
void bert_basic_tokenize(std::string_view text, const BertBasicOptions& options,
                         const std::function<void(const std::u32string&)>& word);

// Whether BERT treats a code point as a CJK ideograph (its _is_chinese_char ranges).
bool bert_is_cjk(char32_t cp);

}  // namespace tessera
