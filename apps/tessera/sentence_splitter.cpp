#include "sentence_splitter.hpp"

#include <algorithm>
#include <iterator>
#include <string>

#include "tessera/utf8.hpp"

namespace tessera::app {

namespace {

// Rule 3's list. Left out on purpose: words that also end sentences ("no", "sun", "sat").
constexpr std::string_view kAbbreviations[] = {
    "mr",  "mrs", "ms",  "dr",  "prof", "st",  "jr",  "sr",  "vs",  "etc", "al",  "cf",  "ca",  "approx", "fig",
    "figs", "eq", "vol", "vols", "pp",  "ch",  "sec", "ed",  "eds", "rev", "inc", "ltd", "co",  "corp",   "dept",
    "gov", "jan", "feb", "mar", "apr",  "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "viz"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_terminator(char c) { return c == '.' || c == '!' || c == '?'; }

char32_t code_point_at(std::string_view s, std::size_t i, unsigned* len) {
  const unicode::Decoded d = unicode::decode_utf8(s, i);
  *len = d.len;
  return d.valid ? d.cp : 0xFFFD;
}

bool is_closing(char32_t c) {
  return c == ')' || c == ']' || c == '}' || c == '"' || c == '\'' || c == 0x201D || c == 0x2019 || c == 0xBB;
}
bool is_opening(char32_t c) {
  return c == '(' || c == '[' || c == '{' || c == '"' || c == '\'' || c == '`' || c == 0x201C || c == 0x2018 ||
         c == 0xAB || c == 0xBF || c == 0xA1;
}
bool is_capital(char32_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3A9) ||
         (c >= 0x400 && c <= 0x42F);
}
bool is_sentence_start(char32_t c) { return is_capital(c) || (c >= '0' && c <= '9') || is_opening(c); }

// Rule 3: whether the "." at text[dot] ends an abbreviation, an initial or a line's enumerator.
bool is_abbreviation_dot(std::string_view text, std::size_t dot) {
  std::size_t begin = dot;
  while (begin > 0 && !is_space(text[begin - 1])) --begin;
  std::size_t line = begin;
  while (line > 0 && (text[line - 1] == ' ' || text[line - 1] == '\t')) --line;
  const bool first_on_line = line == 0 || text[line - 1] == '\n' || text[line - 1] == '\r';
  std::string_view word = text.substr(begin, dot - begin);
  for (unsigned len = 0; !word.empty() && is_opening(code_point_at(word, 0, &len));) word.remove_prefix(len);
  if (word.empty()) return false;
  if (word.find('.') != std::string_view::npos) return true;
  unsigned len = 0;
  const char32_t first = code_point_at(word, 0, &len);
  if (len == word.size() && (is_capital(first) || (first >= 'a' && first <= 'z'))) return true;
  if (first_on_line && word.size() <= 3 && std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return true;
  std::string lower(word);
  for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return std::find(std::begin(kAbbreviations), std::end(kAbbreviations), lower) != std::end(kAbbreviations);
}

// Rule 4: the length of the CJK full stop at text[i], or 0.
std::size_t cjk_stop_at(std::string_view text, std::size_t i) {
  for (std::string_view stop : {"\u3002", "\uFF01", "\uFF1F"})
    if (text.substr(i).starts_with(stop)) return stop.size();
  return 0;
}

}  // namespace

std::vector<std::string_view> split_sentences(std::string_view text) {
  std::vector<std::string_view> sentences;
  std::size_t start = 0;
  auto end_sentence = [&](std::size_t end) {
    std::size_t b = start, e = end;
    while (b < e && is_space(text[b])) ++b;
    while (e > b && is_space(text[e - 1])) --e;
    if (e > b) sentences.push_back(text.substr(b, e - b));
    start = end;
  };
  // The end of the closing quotes/brackets from text[i] on.
  auto skip_closing = [&](std::size_t i, bool cjk) {
    while (i < text.size()) {
      unsigned len = 0;
      const char32_t c = code_point_at(text, i, &len);
      if (!(is_closing(c) || (cjk && (c == 0x300D || c == 0x300F || c == 0xFF09)))) break;
      i += len;
    }
    return i;
  };
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '\n') {  // rule 1
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != '\n' && is_space(text[j])) ++j;
      if (j < text.size() && text[j] == '\n') end_sentence(i);
      i = j;
      continue;
    }
    if (const std::size_t stop = cjk_stop_at(text, i)) {  // rule 4
      i = skip_closing(i + stop, true);
      end_sentence(i);
      continue;
    }
    if (!is_terminator(text[i])) {
      ++i;
      continue;
    }
    std::size_t run_end = i;  // rule 2
    while (run_end < text.size() && is_terminator(text[run_end])) ++run_end;
    const std::size_t end = skip_closing(run_end, false);
    std::size_t next = end;
    while (next < text.size() && is_space(text[next])) ++next;
    unsigned len = 0;
    bool split = next > end && next < text.size() && is_sentence_start(code_point_at(text, next, &len));
    if (split && run_end == i + 1 && text[i] == '.' && is_abbreviation_dot(text, i)) split = false;  // rule 3
    if (split) end_sentence(end);
    i = split ? end : run_end;
  }
  end_sentence(text.size());
  return sentences;
}

}  // namespace tessera::app
