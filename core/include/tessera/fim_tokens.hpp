// The fill-in-the-middle sentinels of a code model's tokenizer, found by their text: StarCoder's
// <fim_prefix> <fim_middle> <fim_suffix> <fim_pad>, else SantaCoder's hyphenated <fim-prefix> …
// (BigCode renamed them in 2023). Used by the FIM data transform (plugins/gpt_indexed) and by
// `tessera generate`'s FIM prompts, so both read a tokenizer alike.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

class Tokenizer;

struct FimTokenIds {
  std::int32_t prefix = -1, middle = -1, suffix = -1, pad = -1;
};

// The four ids, or nullopt with `missing` listing each absent token as "<fim_prefix> (or <fim-prefix>)".
std::optional<FimTokenIds> find_fim_token_ids(const Tokenizer& tokenizer, std::vector<std::string>& missing);

}  // namespace tessera
