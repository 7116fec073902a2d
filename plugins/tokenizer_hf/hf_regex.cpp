#include "hf_regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <mutex>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

// Unicode White_Space, Oniguruma's \s: the members of PCRE2's \s less U+180E.
constexpr std::string_view kWhiteSpaceItems =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Oniguruma's Unicode \w (the Word property: Alphabetic, marks, decimal numbers, connector punctuation,
// joiners); PCRE2's UCP \w is \p{L}\p{N}_ and differs on marks and non-decimal numbers.
constexpr std::string_view kWordItems = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";

}  // namespace

std::string translate_onig_pattern(std::string_view p, const std::string& what) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  std::size_t class_start = 0;  // index in p just after "[" or "[^"
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size())
        throw FormatError(fmt::format("{}: the pattern ends in a lone backslash", what));
      const char e = p[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceItems) : "[" + std::string(kWhiteSpaceItems) + "]";
      } else if (e == 'S') {
        if (in_class)
          throw FormatError(fmt::format("{}: \\S inside a [...] class is not supported (PCRE2's \\s differs from "
                                        "Oniguruma's at U+180E and cannot be corrected there); write the class "
                                        "without it", what));
        out += "[^" + std::string(kWhiteSpaceItems) + "]";
      } else if (e == 'w') {
        out += in_class ? std::string(kWordItems) : "[" + std::string(kWordItems) + "]";
      } else if (e == 'W') {
        if (in_class)
          throw FormatError(fmt::format("{}: \\W inside a [...] class is not supported (PCRE2's \\w differs from "
                                        "Oniguruma's); write the class without it", what));
        out += "[^" + std::string(kWordItems) + "]";
      } else if (e == 'b' && !in_class) {
        throw FormatError(fmt::format("{}: \\b is not supported (word boundaries follow \\w, which differs between "
                                      "Oniguruma and PCRE2)", what));
      } else if (e == 'B') {
        throw FormatError(fmt::format("{}: \\B is not supported (word boundaries follow \\w, which differs between "
                                      "Oniguruma and PCRE2)", what));
      } else if (e == 'h' || e == 'H') {
        throw FormatError(fmt::format("{}: \\{} is not supported (a hex digit in Oniguruma, horizontal space in "
                                      "PCRE2); write [0-9a-fA-F] instead", what, e));
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (in_class) {
      if (c == ']' && i > class_start) {
        in_class = false;
      } else if (c == '[' && !(i + 1 < p.size() && p[i + 1] == ':')) {
        throw FormatError(fmt::format("{}: a '[' inside a [...] class (a nested class in Oniguruma, a literal in "
                                      "PCRE2) is not supported; escape it as \\[",
                                      what));
      } else if (c == '[') {  // POSIX [:alpha:]: copy through its closing ":]"
        const std::size_t end = p.find(":]", i + 2);
        if (end == std::string_view::npos)
          throw FormatError(fmt::format("{}: unterminated [: in a class", what));
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        throw FormatError(fmt::format("{}: '&&' (Oniguruma's class intersection) is not supported", what));
      }
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      class_start = i + 1;
      continue;
    }
    out += c;
  }
  return out;
}

struct HfRegex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  // One match-data block per thread and regex would need bookkeeping; a small pool is enough.
  mutable std::mutex m;
  mutable std::vector<pcre2_match_data*> pool;
  ~Impl() {
    for (auto* d : pool) pcre2_match_data_free(d);
    if (code) pcre2_code_free(code);
  }
  pcre2_match_data* take() const {
    {
      std::lock_guard<std::mutex> lock(m);
      if (!pool.empty()) {
        auto* d = pool.back();
        pool.pop_back();
        return d;
      }
    }
    return pcre2_match_data_create_from_pattern(code, nullptr);
  }
  void give(pcre2_match_data* d) const {
    std::lock_guard<std::mutex> lock(m);
    pool.push_back(d);
  }
};

HfRegex::HfRegex(const std::string& pattern, const std::string& what)
    : translated_(translate_onig_pattern(pattern, what)), impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated_.data()), translated_.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw FormatError(fmt::format("{}: the regex {} is not supported: PCRE2 says \"{}\" at offset {} of {}", what,
                                  quote_untrusted(pattern), reinterpret_cast<const char*>(buf), offset,
                                  quote_untrusted(translated_)));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

HfRegex::~HfRegex() = default;

void HfRegex::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  pcre2_match_data* md = impl_->take();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  std::size_t last_match_end = std::string_view::npos;
  try {
    while (start <= text.size()) {
      const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, md, nullptr)
                                : pcre2_match(impl_->code, subject, text.size(), start, 0, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(rc, buf, sizeof buf);
        throw Error(fmt::format("hf_tokenizer: Split regex failed on the input: {}", reinterpret_cast<const char*>(buf)));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const std::size_t s = ov[0], e = ov[1];
      if (s == e && e == last_match_end) {  // onig's find_iter: no empty match right after a match
        if (start >= text.size()) break;
        const auto b = static_cast<unsigned char>(text[start]);
        std::size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        start += std::min(len, text.size() - start);
        continue;
      }
      out.emplace_back(s, e);
      last_match_end = e;
      start = e;
      if (s == e && start >= text.size()) break;
    }
  } catch (...) {
    impl_->give(md);
    throw;
  }
  impl_->give(md);
}

}  // namespace tessera
