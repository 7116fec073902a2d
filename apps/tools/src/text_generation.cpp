#include "tessera/tools/text_generation.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/tokenizer.hpp"

namespace tessera {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD, what a lossy decode gives a cut character

// Bytes at the end of text that may still change: the longest tail that is a proper prefix of a stop
// string, and any trailing replacement characters (the next token may complete the character).
std::size_t unsettled_tail(std::string_view text, const std::vector<std::string>& stops) {
  std::size_t hold = 0;
  for (const std::string& s : stops)
    for (std::size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.substr(text.size() - n) == std::string_view(s).substr(0, n)) {
        hold = n;
        break;
      }
  std::size_t replacement = 0;
  while (text.size() - replacement >= kReplacement.size() &&
         text.substr(text.size() - replacement - kReplacement.size(), kReplacement.size()) == kReplacement)
    replacement += kReplacement.size();
  return std::max(hold, replacement);
}

}  // namespace

StopTextView final_text(std::string_view text, const std::vector<std::string>& stop_strings) {
  std::size_t first = std::string_view::npos;
  for (const std::string& s : stop_strings)
    if (!s.empty()) first = std::min(first, text.find(s));
  if (first != std::string_view::npos) return {first, true};
  std::vector<std::string> stops;
  for (const std::string& s : stop_strings)
    if (!s.empty()) stops.push_back(s);
  return {text.size() - unsettled_tail(text, stops), false};
}

std::string stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::max_new_tokens: return "max_new_tokens";
    case StopReason::stop_token: return "stop token";
    case StopReason::stop_string: return "stop string";
    case StopReason::window: return "the model's window";
    case StopReason::end_of_line: return "end of line";
  }
  return "?";
}

GeneratedText generate_text(Generator& generator, const Tokenizer& tokenizer, std::vector<std::int32_t> prompt,
                            const TextGenerationOptions& o, const std::function<void(std::string_view)>& on_text) {
  if (prompt.empty()) throw Error("generate_text: an empty prompt (give at least one token, e.g. end of document)");
  if (o.window < 1) throw Error(fmt::format("generate_text: window {} < 1", o.window));
  if (!o.slide_window && static_cast<std::int64_t>(prompt.size()) > o.window)
    throw Error(fmt::format("the prompt is {} tokens, longer than the model's window of {} tokens; shorten it",
                            prompt.size(), o.window));
  std::mt19937_64 rng(o.seed);
  GeneratedText out;
  std::string text;         // decoded from out.ids
  std::size_t handed = 0;   // bytes of text given to on_text
  const auto hand_out = [&](std::size_t upto) {
    if (upto > handed && on_text) on_text(std::string_view(text).substr(handed, upto - handed));
    handed = std::max(handed, upto);
  };
  std::vector<std::int32_t> ids = std::move(prompt);
  std::optional<NewlineTokens> own_newlines;
  NewlineTokens* newlines = o.newline_tokens;
  if (!newlines && (o.stop_on_eol || o.stop_on_double_eol || o.prevent_newline_after_colon))
    newlines = &own_newlines.emplace(tokenizer);
  SamplingOptions sampling = o.sampling;  // top_p decays as tokens are generated
  // The cached path while the whole context fits the cache (the window); then uncached.
  std::unique_ptr<GenerationSession> session;
  Tensor first_logits;
  if (o.use_kv_cache && static_cast<std::int64_t>(ids.size()) <= o.window && o.max_new_tokens > 0) {
    SessionStart s = generator.start_session({ids});
    session = std::move(s.session);
    first_logits = std::move(s.logits);
  }
  for (std::int64_t i = 0; i < o.max_new_tokens; ++i) {
    if (!o.slide_window && static_cast<std::int64_t>(ids.size()) >= o.window) {
      out.reason = StopReason::window;
      break;
    }
    Tensor logits;
    if (session && i == 0) {
      logits = std::move(first_logits);
    } else if (session && session->length(0) < std::min(session->capacity(), o.window)) {
      logits = session->step({ids.back()});
    } else {
      session.reset();  // full: the window slides from here on
    }
    if (session) {
      ++out.cached_steps;
      logits = logits.to(Device::cpu());
    } else {
      const std::size_t start = ids.size() > static_cast<std::size_t>(o.window) ? ids.size() - o.window : 0;
      std::vector<std::int32_t> context(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end());
      Tensor tokens = Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(context.size())}, context);
      logits = generator.next_token_logits(tokens);
    }
    float* row = logits.data<float>();
    if (!std::all_of(row, row + logits.size(1), [](float v) { return std::isfinite(v); }))
      throw NonFiniteLogits(fmt::format("the model computed non-finite logits (NaN or infinity) for token {} of the output",
                                     i + 1));
    // As Megatron, before sampling and logprobs alike.
    if (o.prevent_newline_after_colon) newlines->suppress_after_colon(ids.back(), row, logits.size(1));
    const std::int32_t next = sample_token(row, logits.size(1), sampling, rng);
    if (o.top_p_decay > 0.0) sampling.top_p = next_top_p(sampling.top_p, o.top_p_decay, o.top_p_bound);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) {
      out.reason = StopReason::stop_token;
      break;
    }
    ids.push_back(next);
    out.ids.push_back(next);
    out.logprobs.push_back(token_logprob(row, logits.size(1), next));
    text = tokenizer.decode(out.ids);  // the whole output: characters split over tokens come out whole
    const StopTextView v = final_text(text, o.stop_strings);
    hand_out(v.shown);
    if (v.stopped) {
      out.reason = StopReason::stop_string;
      text.resize(v.shown);
      break;
    }
    if (newlines && newlines->stops(o.stop_on_eol, o.stop_on_double_eol, ids[ids.size() - 2], next)) {
      out.reason = StopReason::end_of_line;
      break;
    }
  }
  if (out.reason != StopReason::stop_string) hand_out(text.size());  // the end settles what was held back
  out.text = text;
  return out;
}

}  // namespace tessera
