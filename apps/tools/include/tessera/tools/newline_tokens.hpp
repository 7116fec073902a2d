// Megatron-LM's newline rules of text generation, for any tokenizer. Megatron compares GPT-2's ids:
// stop_on_eol stops a row at 198 ("\n") or 628 ("\n\n"), stop_on_double_eol at 628 or at 198 after
// 198, and prevent_newline_after_colon sets the logit of tokenize("\n")[0] to −1e10 after
// tokenize(":")[0]. Tessera compares the tokens' text instead: a newline token is one whose text is
// "\n", a double newline one whose text is "\n\n", and a colon token any whose text ends with ":"
// (so BPE's "):" counts too). docs/generation.md "Serving".
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tessera {

class Tokenizer;

class NewlineTokens {
 public:
  // `tokenizer` must outlive this object.
  explicit NewlineTokens(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Whether a row that has just generated `next` (after `previous`, a prompt token or an earlier
  // generated one; none for an empty context) is done under Megatron's stop_on_eol /
  // stop_on_double_eol. Double wins when both are set, as in Megatron.
  bool stops(bool stop_on_eol, bool stop_on_double_eol, std::optional<std::int32_t> previous, std::int32_t next);

  // prevent_newline_after_colon: when `last` (the context's last token) ends with ":", every
  // newline token's logit becomes −1e10 (Megatron's value), in logits[0 … vocab).
  void suppress_after_colon(std::int32_t last, float* logits, std::int64_t vocab);

 private:
  const std::string& text(std::int32_t id);
  const Tokenizer& tokenizer_;
  std::unordered_map<std::int32_t, std::string> texts_;       // decoded single tokens, as needed
  std::optional<std::vector<std::int32_t>> newline_ids_;      // every id whose text is "\n", found once
};

}  // namespace tessera
