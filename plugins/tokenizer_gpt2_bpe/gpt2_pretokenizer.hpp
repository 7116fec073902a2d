// GPT-2's pre-tokenisation, hand-written over UTF-8 because std::regex has no \p{L} / \p{N}:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Alternatives are tried in that order at each position, as a backtracking regex would; in
// particular a whitespace run followed by a non-space gives back its last character, which then
// joins the next word (" ?\p{L}+" etc.). \s is Unicode White_Space (Python's `regex`, which GPT-2's
// encoder uses). Invalid UTF-8 bytes are kept, each as a one-byte "other" character.
#pragma once
#include <string_view>
#include <vector>

namespace tessera {

// Appends the pieces of `text` (views into it, in order, covering every byte) to `out`.
void gpt2_pretokenize(std::string_view text, std::vector<std::string_view>& out);

}  // namespace tessera
