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
#include "tessera/tools/newline_tokens.hpp"

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

namespace {

// One prompt's generation: its context, its sampler (its own RNG stream and decaying top_p) and its
// stops. generate_text is one Row; generate_texts runs several over one cached session.
class Row {
 public:
  Row(const Tokenizer& tokenizer, std::vector<std::int32_t> prompt, std::uint64_t seed, const TextGenerationOptions& o,
      NewlineTokens* newlines, std::string label, std::function<void(std::string_view)> on_text)
      : tokenizer_(&tokenizer), o_(&o), newlines_(newlines), label_(std::move(label)),
        on_text_(std::move(on_text)), rng_(seed), sampling_(o.sampling), ids_(std::move(prompt)) {}

  bool done() const { return done_; }
  const std::vector<std::int32_t>& ids() const { return ids_; }

  // Without sliding, a context that fills the window ends the row before its next token.
  void check_window() {
    if (!done_ && !o_->slide_window && static_cast<std::int64_t>(ids_.size()) >= o_->window)
      finish(StopReason::window);
  }

  // Samples token `i` of the output from `logits` (this row's; prevent_newline_after_colon changes
  // them) and applies the stops.
  void take(float* logits, std::int64_t vocab, bool cached, std::int64_t i) {
    if (cached) ++out_.cached_steps;
    if (!std::all_of(logits, logits + vocab, [](float v) { return std::isfinite(v); }))
      throw NonFiniteLogits(fmt::format(
          "{}the model computed non-finite logits (NaN or infinity) for token {} of the output", label_, i + 1));
    // As Megatron, before sampling and logprobs alike.
    if (o_->prevent_newline_after_colon) newlines_->suppress_after_colon(ids_.back(), logits, vocab);
    const std::int32_t next = sample_token(logits, vocab, sampling_, rng_);
    if (o_->top_p_decay > 0.0) sampling_.top_p = next_top_p(sampling_.top_p, o_->top_p_decay, o_->top_p_bound);
    if (std::find(o_->stop_tokens.begin(), o_->stop_tokens.end(), next) != o_->stop_tokens.end())
      return finish(StopReason::stop_token);
    ids_.push_back(next);
    out_.ids.push_back(next);
    out_.logprobs.push_back(token_logprob(logits, vocab, next));
    text_ = tokenizer_->decode(out_.ids);  // the whole output: characters split over tokens come out whole
    const StopTextView v = final_text(text_, o_->stop_strings);
    hand_out(v.shown);
    if (v.stopped) {
      text_.resize(v.shown);
      return finish(StopReason::stop_string);
    }
    if (newlines_ && newlines_->stops(o_->stop_on_eol, o_->stop_on_double_eol, ids_[ids_.size() - 2], next))
      finish(StopReason::end_of_line);
  }

  // The result; the end settles whatever text was held back (a stop string's cut text stays cut).
  GeneratedText result() {
    if (out_.reason != StopReason::stop_string) hand_out(text_.size());
    out_.text = text_;
    return std::move(out_);
  }

 private:
  void finish(StopReason reason) {
    out_.reason = reason;
    done_ = true;
  }
  void hand_out(std::size_t upto) {
    if (upto > handed_ && on_text_) on_text_(std::string_view(text_).substr(handed_, upto - handed_));
    handed_ = std::max(handed_, upto);
  }

  const Tokenizer* tokenizer_;
  const TextGenerationOptions* o_;
  NewlineTokens* newlines_;
  std::string label_;  // names the prompt in errors when there are several
  std::function<void(std::string_view)> on_text_;
  std::mt19937_64 rng_;
  SamplingOptions sampling_;       // top_p decays as tokens are generated
  std::vector<std::int32_t> ids_;  // prompt + output
  GeneratedText out_;
  std::string text_;        // decoded from out_.ids
  std::size_t handed_ = 0;  // bytes of text_ given to on_text_
  bool done_ = false;
};

std::vector<GeneratedText> generate_rows(Generator& generator, const Tokenizer& tokenizer,
                                         std::vector<std::vector<std::int32_t>> prompts, const TextGenerationOptions& o,
                                         const std::vector<std::uint64_t>& seeds,
                                         const std::function<void(std::size_t, std::string_view)>& on_text,
                                         bool several) {
  if (prompts.empty()) throw Error("generate_texts: no prompts");
  if (seeds.size() != prompts.size())
    throw Error(fmt::format("generate_texts: {} seeds for {} prompts", seeds.size(), prompts.size()));
  if (o.window < 1) throw Error(fmt::format("generate_text: window {} < 1", o.window));
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    const std::string which = several ? fmt::format("prompt {}", b) : "the prompt";
    if (prompts[b].empty())
      throw Error(fmt::format("generate_text: {} is empty (give at least one token, e.g. end of document)", which));
    if (!o.slide_window && static_cast<std::int64_t>(prompts[b].size()) > o.window)
      throw Error(fmt::format("{} is {} tokens, longer than the model's window of {} tokens; shorten it", which,
                              prompts[b].size(), o.window));
  }
  // What the newline rules decode serves every row.
  std::optional<NewlineTokens> newline_tokens;
  NewlineTokens* newlines = nullptr;
  if (o.stop_on_eol || o.stop_on_double_eol || o.prevent_newline_after_colon)
    newlines = &newline_tokens.emplace(tokenizer);
  std::vector<Row> rows;
  rows.reserve(prompts.size());
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    std::function<void(std::string_view)> piece;
    if (on_text) piece = [&on_text, b](std::string_view p) { on_text(b, p); };
    rows.emplace_back(tokenizer, std::move(prompts[b]), seeds[b], o, newlines,
                      several ? fmt::format("prompt {}: ", b) : "", std::move(piece));
  }
  // The cached path for the rows whose context fits the cache (the window), all in one session:
  // `members` are their indices in the session's row order. A row leaves the session (select_rows)
  // once it is done, or once its cache is full, from where its window slides uncached.
  std::unique_ptr<GenerationSession> session;
  std::vector<std::size_t> members;
  Tensor logits;  // the session's, for `members`
  if (o.use_kv_cache && o.max_new_tokens > 0) {
    std::vector<std::vector<std::int32_t>> fit;
    for (std::size_t b = 0; b < rows.size(); ++b)
      if (static_cast<std::int64_t>(rows[b].ids().size()) <= o.window) {
        members.push_back(b);
        fit.push_back(rows[b].ids());
      }
    if (!fit.empty()) {
      // Sized for the longest prompt and every token to generate (capped by the Generator at its
      // sequence length; the window caps when a row leaves the session).
      std::int64_t longest = 0;
      for (const auto& ids : fit) longest = std::max(longest, static_cast<std::int64_t>(ids.size()));
      SessionStart s = generator.start_session(fit, longest + std::min<std::int64_t>(o.max_new_tokens, INT32_MAX));
      session = std::move(s.session);
      logits = std::move(s.logits);
    }
    if (!session) members.clear();
  }
  std::vector<bool> in_session(rows.size());
  for (std::int64_t i = 0; i < o.max_new_tokens; ++i) {
    for (Row& r : rows) r.check_window();
    if (session && i > 0) {  // at i = 0 the prefill's logits serve
      std::vector<std::int64_t> keep;
      std::vector<std::size_t> kept;
      for (std::size_t j = 0; j < members.size(); ++j)
        if (!rows[members[j]].done() &&
            session->length(static_cast<std::int64_t>(j)) < std::min(session->capacity(), o.window)) {
          keep.push_back(static_cast<std::int64_t>(j));
          kept.push_back(members[j]);
        }
      if (kept.empty()) {
        session.reset();
      } else {
        if (kept.size() != members.size()) session->select_rows(keep);
        std::vector<std::int32_t> next;
        for (std::size_t m : kept) next.push_back(rows[m].ids().back());
        logits = session->step(next);
      }
      members = std::move(kept);
    }
    std::fill(in_session.begin(), in_session.end(), false);
    if (session) {
      logits = logits.to(Device::cpu());
      const std::int64_t vocab = logits.size(1);
      for (std::size_t j = 0; j < members.size(); ++j) {
        in_session[members[j]] = true;
        if (!rows[members[j]].done())
          rows[members[j]].take(logits.data<float>() + static_cast<std::int64_t>(j) * vocab, vocab, true, i);
      }
    }
    // The others: a full forward each, over the last `window` tokens.
    for (std::size_t b = 0; b < rows.size(); ++b) {
      if (in_session[b] || rows[b].done()) continue;
      const std::vector<std::int32_t>& ids = rows[b].ids();
      const std::size_t start = ids.size() > static_cast<std::size_t>(o.window) ? ids.size() - o.window : 0;
      std::vector<std::int32_t> context(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end());
      Tensor row = generator.next_token_logits(
          Tensor::from<std::int32_t>({1, static_cast<std::int64_t>(context.size())}, context));
      rows[b].take(row.data<float>(), row.size(1), false, i);
    }
    if (std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.done(); })) break;
  }
  std::vector<GeneratedText> out;
  for (Row& r : rows) out.push_back(r.result());
  return out;
}

}  // namespace

GeneratedText generate_text(Generator& generator, const Tokenizer& tokenizer, std::vector<std::int32_t> prompt,
                            const TextGenerationOptions& o, const std::function<void(std::string_view)>& on_text) {
  std::function<void(std::size_t, std::string_view)> piece;
  if (on_text) piece = [&on_text](std::size_t, std::string_view p) { on_text(p); };
  return std::move(generate_rows(generator, tokenizer, {std::move(prompt)}, o, {o.seed}, piece, false).front());
}

std::vector<GeneratedText> generate_texts(Generator& generator, const Tokenizer& tokenizer,
                                          std::vector<std::vector<std::int32_t>> prompts,
                                          const TextGenerationOptions& o, const std::vector<std::uint64_t>& seeds,
                                          const std::function<void(std::size_t, std::string_view)>& on_text) {
  return generate_rows(generator, tokenizer, std::move(prompts), o, seeds, on_text, true);
}

}  // namespace tessera
