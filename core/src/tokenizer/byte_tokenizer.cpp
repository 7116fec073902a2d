#include "tessera/tokenizer/byte_tokenizer.hpp"

#include "tessera/error.hpp"

namespace tessera {

namespace {
constexpr std::string_view kEndOfText = "<|endoftext|>";
}

std::vector<std::int32_t> ByteTokenizer::encode(std::string_view text) const {
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

std::string ByteTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string s;
  s.reserve(ids.size());
  for (std::int32_t id : ids) {
    if (id == kEod) s += kEndOfText;
    else if (id >= 0 && id < 256) s += static_cast<char>(id);
    else throw Error(fmt::format("byte tokenizer: cannot decode id {} (ids are 0..256)", id));
  }
  return s;
}

std::optional<std::int32_t> ByteTokenizer::special_token(std::string_view text) const {
  if (text == kEndOfText) return kEod;
  return std::nullopt;
}

}  // namespace tessera
