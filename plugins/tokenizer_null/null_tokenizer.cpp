// The "null" tokenizer plugin, Megatron-LM's NullTokenizer (--tokenizer-type NullTokenizer
// --vocab-size N): no vocabulary, the text is the ids themselves, written as decimal numbers
// separated by whitespace. [tokenizer] vocab_size = N gives ids 0 … N − 1 and the end-of-document id
// N, so vocab_size() is N + 1, as Megatron's. For data already tokenized by a tokenizer Tessera does
// not have (its .bin/.idx need only the vocabulary size), prompts given as ids, and tests.
#include <charconv>

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/quote.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::null_tokenizer {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class NullTokenizer : public Tokenizer {
 public:
  explicit NullTokenizer(std::int32_t vocab_size) : eod_(vocab_size) {}

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    for (std::size_t i = 0; i < text.size();) {
      if (is_space(text[i])) {
        ++i;
        continue;
      }
      std::size_t end = i;
      while (end < text.size() && !is_space(text[end])) ++end;
      const std::string_view word = text.substr(i, end - i);
      std::int64_t id = -1;
      const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
      if (ec != std::errc() || ptr != word.data() + word.size() || id < 0 || id > eod_)
        throw Error(fmt::format("null tokenizer: {} is not an id: the text must be whole numbers 0 … {} separated by "
                                "whitespace ({} is the end of a document)",
                                quote_untrusted(word), eod_, eod_));
      out.push_back(static_cast<std::int32_t>(id));
      i = end;
    }
    return out;
  }

  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    for (std::int32_t id : ids) {
      if (id < 0 || id > eod_)
        throw Error(fmt::format("null tokenizer: cannot decode id {} (ids are 0 … {})", id, eod_));
      if (!s.empty()) s += ' ';
      s += std::to_string(id);
    }
    return s;
  }

  std::int64_t vocab_size() const override { return std::int64_t{eod_} + 1; }
  std::int32_t eod() const override { return eod_; }
  std::optional<std::int32_t> special_token(std::string_view) const override { return std::nullopt; }
  std::string name() const override { return "null"; }

 private:
  std::int32_t eod_;  // = the configured vocab_size
};

std::unique_ptr<Tokenizer> make_null_tokenizer(const ConfigSection& s) {
  if (!s.has("vocab_size"))
    throw ConfigError(fmt::format("tokenizer plugin 'null' needs tokenizer.vocab_size (in {}): the number of ids "
                                  "the data uses, as Megatron-LM's --vocab-size; the end-of-document id is that "
                                  "number",
                                  s.origin("plugin")));
  return std::make_unique<NullTokenizer>(static_cast<std::int32_t>(s.get_int("vocab_size", 1, 1, INT32_MAX - 1)));
}

}  // namespace
}  // namespace tessera::null_tokenizer

TESSERA_PLUGIN(tokenizer, null, tessera::null_tokenizer::make_null_tokenizer)
