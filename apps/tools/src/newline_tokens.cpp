#include "tessera/tools/newline_tokens.hpp"

#include "tessera/tokenizer.hpp"

namespace tessera {

const std::string& NewlineTokens::text(std::int32_t id) {
  auto it = texts_.find(id);
  if (it == texts_.end()) it = texts_.emplace(id, tokenizer_.decode({id})).first;
  return it->second;
}

bool NewlineTokens::stops(bool stop_on_eol, bool stop_on_double_eol, std::optional<std::int32_t> previous,
                          std::int32_t next) {
  if (!stop_on_eol && !stop_on_double_eol) return false;
  const std::string& t = text(next);
  if (t == "\n\n") return true;
  if (t != "\n") return false;
  return stop_on_double_eol ? previous && text(*previous) == "\n" : true;
}

void NewlineTokens::suppress_after_colon(std::int32_t last, float* logits, std::int64_t vocab) {
  if (!text(last).ends_with(':')) return;
  if (!newline_ids_) {
    // One scan of the vocabulary per request that needs it (decoding one token is cheap).
    newline_ids_.emplace();
    for (std::int64_t id = 0; id < tokenizer_.vocab_size(); ++id)
      if (tokenizer_.decode({static_cast<std::int32_t>(id)}) == "\n") newline_ids_->push_back(static_cast<std::int32_t>(id));
  }
  for (std::int32_t id : *newline_ids_)
    if (id < vocab) logits[id] = -1e10f;
}

}  // namespace tessera
