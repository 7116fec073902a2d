#include "tessera/tools/fim_prompt.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

FimOrder parse_fim_order(const std::string& text, const std::string& what) {
  if (text == "psm") return FimOrder::psm;
  if (text == "spm") return FimOrder::spm;
  throw ConfigError(fmt::format("{} = \"{}\": the fill-in-the-middle order is \"psm\" (prefix, suffix, middle) or "
                                "\"spm\" (suffix, prefix, middle)",
                                what, text));
}

FimTokenIds require_fim_tokens(const Tokenizer& tokenizer) {
  std::vector<std::string> missing;
  if (auto ids = find_fim_token_ids(tokenizer, missing)) return *ids;
  throw ConfigError(fmt::format("a fill-in-the-middle prompt needs the FIM tokens, but the tokenizer '{}' lacks {} "
                                "(a model trained with fim_rate > 0 has them: StarCoder's or SantaCoder's tokenizer.json)",
                                tokenizer.name(), fmt::join(missing, ", ")));
}

std::vector<std::int32_t> fim_prompt(const Tokenizer& tokenizer, const FimTokenIds& fim, std::string_view prefix,
                                     std::string_view suffix, FimOrder order) {
  const std::vector<std::int32_t> pre = tokenizer.encode(prefix), suf = tokenizer.encode(suffix);
  std::vector<std::int32_t> ids;
  const auto append = [&](const std::vector<std::int32_t>& v) { ids.insert(ids.end(), v.begin(), v.end()); };
  if (order == FimOrder::psm) {
    ids.push_back(fim.prefix);
    append(pre);
    ids.push_back(fim.suffix);
    append(suf);
    ids.push_back(fim.middle);
  } else {  // BigCode's SPM ("variant 2" of Bavarian et al. 2022)
    ids.push_back(fim.prefix);
    ids.push_back(fim.suffix);
    append(suf);
    ids.push_back(fim.middle);
    append(pre);
  }
  return ids;
}

}  // namespace tessera
