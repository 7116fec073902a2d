// The "byte" tokenizer plugin: ids 0..255 are the bytes of the text, 256 is EOD ("<|endoftext|>",
// recognised in input text only with [tokenizer] parse_special_tokens), vocab_size 257. Needs no
// files, so it suits tests and any corpus without a trained vocabulary.
#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera::byte_tokenizer {

namespace {

constexpr std::string_view kEndOfText = "<|endoftext|>";
constexpr std::int32_t kEod = 256;

class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(bool parse_special_tokens) : parse_special_tokens_(parse_special_tokens) {}

  std::vector<std::int32_t> encode(std::string_view text) const override {
    std::vector<std::int32_t> out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      if (parse_special_tokens_ && text[i] == '<' && text.substr(i).starts_with(kEndOfText)) {
        out.push_back(kEod);
        i += kEndOfText.size();
      } else {
        out.push_back(static_cast<unsigned char>(text[i++]));
      }
    }
    return out;
  }

  std::string decode(const std::vector<std::int32_t>& ids) const override {
    std::string s;
    s.reserve(ids.size());
    for (std::int32_t id : ids) {
      if (id == kEod) s += kEndOfText;
      else if (id >= 0 && id < 256) s += static_cast<char>(id);
      else throw Error(fmt::format("byte tokenizer: cannot decode id {} (ids are 0..256)", id));
    }
    return s;
  }

  std::int64_t vocab_size() const override { return 257; }
  std::int32_t eod() const override { return kEod; }
  std::optional<std::int32_t> special_token(std::string_view text) const override {
    if (text == kEndOfText) return kEod;
    return std::nullopt;
  }
  std::string name() const override { return "byte"; }

 private:
  bool parse_special_tokens_;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer(const ConfigSection& s) {
  return std::make_unique<ByteTokenizer>(s.get_bool("parse_special_tokens", false));
}

}  // namespace
}  // namespace tessera::byte_tokenizer

TESSERA_PLUGIN(tokenizer, byte, tessera::byte_tokenizer::make_byte_tokenizer)
