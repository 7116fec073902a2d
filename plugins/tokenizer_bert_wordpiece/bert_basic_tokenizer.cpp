#include "bert_basic_tokenizer.hpp"

#include <algorithm>
#include <array>

#include "bert_unicode.hpp"
#include "tessera/utf8.hpp"

namespace tessera {

namespace u = bert_unicode;

namespace {

constexpr char32_t kCapitalSigma = 0x3A3, kSmallSigma = 0x3C3, kFinalSigma = 0x3C2;

// bert_unicode::flags with the ASCII answers cached: most text is ASCII, and the table is a search.
unsigned flags_of(char32_t c) {
  static const auto ascii = [] {
    std::array<unsigned char, 128> t{};
    for (char32_t a = 0; a < 128; ++a) t[a] = static_cast<unsigned char>(u::flags(a));
    return t;
  }();
  return c < 128 ? ascii[c] : u::flags(c);
}

bool all_ascii(const std::u32string& w) {
  return std::all_of(w.begin(), w.end(), [](char32_t c) { return c < 128; });
}

// CPython's str.lower() of one word: U+03A3 is the final form when a cased character precedes it
// and none follows (case-ignorable characters skipped both ways).
void lower_word(const std::u32string& w, std::u32string& out) {
  auto cased = [](char32_t c) { return (flags_of(c) & u::kCased) != 0; };
  auto ignorable = [](char32_t c) { return (flags_of(c) & u::kCaseIgnorable) != 0; };
  out.clear();
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (w[i] != kCapitalSigma) {
      u::append_lower(w[i], out);
      continue;
    }
    std::size_t j = i;
    while (j > 0 && ignorable(w[j - 1])) --j;
    bool final_form = j > 0 && cased(w[j - 1]);
    if (final_form) {
      std::size_t k = i + 1;
      while (k < w.size() && ignorable(w[k])) ++k;
      final_form = k == w.size() || !cased(w[k]);
    }
    out += final_form ? kFinalSigma : kSmallSigma;
  }
}

// NFD (full canonical decomposition, then combining marks in canonical order), minus the Mn marks.
void strip_accents(const std::u32string& w, std::u32string& out) {
  std::u32string nfd;
  for (char32_t c : w) u::append_decomposition(c, nfd);
  for (std::size_t i = 0; i < nfd.size();) {  // stable-sort each run of non-starters by class
    if (u::combining_class(nfd[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < nfd.size() && u::combining_class(nfd[end]) != 0) ++end;
    std::stable_sort(nfd.begin() + static_cast<std::ptrdiff_t>(i), nfd.begin() + static_cast<std::ptrdiff_t>(end),
                     [](char32_t a, char32_t b) { return u::combining_class(a) < u::combining_class(b); });
    i = end;
  }
  out.clear();
  for (char32_t c : nfd)
    if (!(flags_of(c) & u::kNonspacingMark)) out += c;
}

// Step 5, plus str.split() of the joined result (a split word never holds white space in practice,
// but splitting there keeps the two identical).
void split_punctuation(const std::u32string& w, const std::function<void(const std::u32string&)>& emit) {
  thread_local std::u32string piece;
  piece.clear();
  for (char32_t c : w) {
    const unsigned f = flags_of(c);
    if (!(f & (u::kPySpace | u::kPunctuation))) {
      piece += c;
      continue;
    }
    if (!piece.empty()) emit(piece);
    piece.clear();
    if (f & u::kPunctuation) emit(std::u32string(1, c));
  }
  if (!piece.empty()) emit(piece);
}

}  // namespace

bool bert_is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void bert_basic_tokenize(std::string_view text, const BertBasicOptions& options,
                         const std::function<void(const std::u32string&)>& emit) {
  thread_local std::u32string word, lowered, stripped;
  word.clear();
  auto finish_word = [&] {
    if (word.empty()) return;
    const std::u32string* w = &word;
    if (all_ascii(word)) {  // ASCII lower-cases to ASCII and has nothing to decompose or strip
      if (options.lower_case)
        for (char32_t& c : word)
          if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    } else {
      if (options.lower_case) {
        lower_word(*w, lowered);
        w = &lowered;
      }
      if (options.strip_accents) {
        strip_accents(*w, stripped);
        w = &stripped;
      }
    }
    split_punctuation(*w, emit);
    word.clear();
  };
  for (std::size_t i = 0; i < text.size();) {
    const unicode::Decoded d = unicode::decode_utf8(text, i);
    i += d.len;
    const char32_t c = d.valid ? d.cp : 0xFFFD;  // Python would have decoded a bad byte as U+FFFD
    if (c == 0 || c == 0xFFFD) continue;
    const unsigned f = flags_of(c);
    if (f & u::kControl) continue;
    if ((f & u::kWhitespace) || (f & u::kPySpace)) {
      finish_word();
    } else if (bert_is_cjk(c)) {
      finish_word();
      word += c;
      finish_word();
    } else {
      word += c;
    }
  }
  finish_word();
}

}  // namespace tessera
