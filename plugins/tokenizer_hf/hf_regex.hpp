// The regular expressions of tokenizer.json `Split` pre-tokenizers, run with PCRE2 (UTF + UCP: \p{L},
// \p{N}, lookahead (?!\S), (?i:...) as Hugging Face's Oniguruma). Where the two dialects differ, the
// pattern is rewritten or refused, never run with another meaning:
//   - \s / \S are Oniguruma's White_Space; PCRE2's \s also takes U+180E, so both are rewritten to an
//     explicit White_Space class (\S inside a [...] class cannot be rewritten and is refused);
//   - \w / \W are Oniguruma's Word property (PCRE2's UCP \w is \p{L}\p{N}_): rewritten to an explicit
//     class (\W inside a class is refused); \b / \B, which follow \w, are refused;
//   - \h / \H are a hex digit in Oniguruma's Ruby syntax but horizontal space in PCRE2: refused;
//   - an unescaped '[' inside a class is a nested class in Oniguruma, a literal in PCRE2, and '&&' is
//     Oniguruma's class intersection: refused.
// Matching follows the onig crate's find_iter (what Hugging Face iterates with): leftmost matches in
// order; an empty match right where the previous match ended is skipped by one character.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

class HfRegex {
 public:
  // Throws FormatError "<what>: <reason>" (what names the file and JSON path) for a pattern PCRE2 does
  // not compile or that uses a construct listed above.
  HfRegex(const std::string& pattern, const std::string& what);
  ~HfRegex();
  HfRegex(const HfRegex&) = delete;
  HfRegex& operator=(const HfRegex&) = delete;

  // Appends the [start, end) byte offsets of the matches in text. Invalid UTF-8 never matches
  // (PCRE2_MATCH_INVALID_UTF); it is left to the gaps between matches.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

  // The pattern as PCRE2 compiles it (after the rewrites above).
  const std::string& pcre2_pattern() const { return translated_; }

 private:
  struct Impl;
  std::string translated_;
  std::unique_ptr<Impl> impl_;
};

// The Oniguruma pattern rewritten for PCRE2 (see above); FormatError "<what>: ..." when refused.
std::string translate_onig_pattern(std::string_view pattern, const std::string& what);

}  // namespace tessera
