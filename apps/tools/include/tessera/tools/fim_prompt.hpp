// A fill-in-the-middle prompt for a code model trained with FIM (BigCode's Megatron-LM
// gpt_dataset.py, docs/fim.md): the model is given the code before and after a gap and generates
// the gap. The two orders it was trained on:
//   psm  [<fim_prefix>] prefix [<fim_suffix>] suffix [<fim_middle>]      → middle
//   spm  [<fim_prefix>, <fim_suffix>] suffix [<fim_middle>] prefix        → middle
// Prefix and suffix are encoded separately, as training re-encoded each piece.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/fim_tokens.hpp"

namespace tessera {

class Tokenizer;

enum class FimOrder { psm, spm };

// "psm" or "spm" (ConfigError otherwise, naming `what`).
FimOrder parse_fim_order(const std::string& text, const std::string& what);

// The tokenizer's FIM ids: a ConfigError naming the tokenizer and each missing token otherwise.
FimTokenIds require_fim_tokens(const Tokenizer& tokenizer);

std::vector<std::int32_t> fim_prompt(const Tokenizer& tokenizer, const FimTokenIds& fim, std::string_view prefix,
                                     std::string_view suffix, FimOrder order);

}  // namespace tessera
