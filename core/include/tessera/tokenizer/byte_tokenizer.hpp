// The byte-level fallback tokenizer: ids 0..255 are the bytes of the text, 256 is EOD
// ("<|endoftext|>"; recognised in input text only with parse_special_tokens), vocab_size 257.
// Needs no files.
#pragma once
#include "tessera/tokenizer.hpp"

namespace tessera {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr std::int32_t kEod = 256;
  explicit ByteTokenizer(bool parse_special_tokens = false) : parse_special_tokens_(parse_special_tokens) {}
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int64_t vocab_size() const override { return 257; }
  std::int32_t eod() const override { return kEod; }
  std::optional<std::int32_t> special_token(std::string_view text) const override;
  std::string name() const override { return "byte"; }

 private:
  bool parse_special_tokens_;
};

}  // namespace tessera
