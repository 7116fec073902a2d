#include "tessera/fim_tokens.hpp"

#include <fmt/format.h>

#include "tessera/tokenizer.hpp"

namespace tessera {

std::optional<FimTokenIds> find_fim_token_ids(const Tokenizer& tokenizer, std::vector<std::string>& missing) {
  FimTokenIds ids;
  const std::size_t missing_before = missing.size();
  const auto find = [&](const char* name, const char* santacoder, std::int32_t& id) {
    if (auto v = tokenizer.special_token(name)) id = *v;
    else if (auto w = tokenizer.special_token(santacoder)) id = *w;
    else missing.push_back(fmt::format("{} (or {})", name, santacoder));
  };
  find("<fim_prefix>", "<fim-prefix>", ids.prefix);
  find("<fim_middle>", "<fim-middle>", ids.middle);
  find("<fim_suffix>", "<fim-suffix>", ids.suffix);
  find("<fim_pad>", "<fim-pad>", ids.pad);
  if (missing.size() != missing_before) return std::nullopt;
  return ids;
}

}  // namespace tessera
