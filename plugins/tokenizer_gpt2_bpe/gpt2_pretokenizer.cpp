#include "gpt2_pretokenizer.hpp"

#include "unicode_classes.hpp"

namespace tessera {

using unicode::CharClass;

namespace {

// Length of the contraction ('s 't 're 've 'm 'll 'd) starting at text[i] == '\'', or 0.
std::size_t contraction(std::string_view text, std::size_t i) {
  const std::size_t rest = text.size() - i - 1;
  if (rest >= 1) {
    const char c = text[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  }
  if (rest >= 2) {
    const std::string_view two = text.substr(i + 1, 2);
    if (two == "re" || two == "ve" || two == "ll") return 3;
  }
  return 0;
}

// End of the run of characters of class `cls` starting at i.
std::size_t run_end(std::string_view text, std::size_t i, CharClass cls) {
  unsigned len = 0;
  while (i < text.size() && unicode::class_at(text, i, &len) == cls) i += len;
  return i;
}

}  // namespace

void gpt2_pretokenize(std::string_view text, std::vector<std::string_view>& out) {
  std::size_t pos = 0;
  const std::size_t n = text.size();
  while (pos < n) {
    if (text[pos] == '\'') {
      if (std::size_t len = contraction(text, pos)) {
        out.push_back(text.substr(pos, len));
        pos += len;
        continue;
      }
    }
    unsigned len = 0;
    const CharClass cls = unicode::class_at(text, pos, &len);
    // " ?X+" for X in letters, numbers, others: an optional single U+0020 then a run of one class.
    std::size_t body = pos;
    CharClass body_cls = cls;
    if (text[pos] == ' ' && pos + 1 < n) {
      unsigned next_len = 0;
      const CharClass next = unicode::class_at(text, pos + 1, &next_len);
      if (next != CharClass::space) {
        body = pos + 1;
        body_cls = next;
      }
    }
    if (body_cls != CharClass::space) {
      const std::size_t end = run_end(text, body, body_cls);
      out.push_back(text.substr(pos, end - pos));
      pos = end;
      continue;
    }
    // Whitespace: "\s+(?!\S)" takes the run but leaves its last character when a non-space follows
    // (unless the run is that one character, when "\s+" takes it).
    std::size_t end = pos, last = pos;
    while (end < n) {
      unsigned l = 0;
      if (unicode::class_at(text, end, &l) != CharClass::space) break;
      last = end;
      end += l;
    }
    if (end < n && last > pos) end = last;
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
}

}  // namespace tessera
