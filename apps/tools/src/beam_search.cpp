#include "tessera/tools/beam_search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/generation.hpp"
#include "tessera/tensor.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/tools/newline_tokens.hpp"
#include "tessera/tools/text_generation.hpp"

namespace tessera {

bool better_beam_score(double a, double b) {
  // NaNs last, equal among themselves: a strict weak ordering still (a plain `>` with NaN is not
  // one, and sorting with it is undefined behaviour).
  if (std::isnan(a) || std::isnan(b)) return !std::isnan(a);
  return a > b;
}

namespace {

// Megatron's BeamHypotheses (from Hugging Face's, early_stopping = false): the best `width` finished
// hypotheses and the worst score among them.
class Hypotheses {
 public:
  Hypotheses(std::int64_t width, double length_penalty) : width_(static_cast<std::size_t>(width)), penalty_(length_penalty) {}

  void add(std::vector<std::int32_t> ids, double sum_logprobs, std::int64_t length) {
    const double score = sum_logprobs / std::pow(static_cast<double>(length), penalty_);
    if (beams_.size() < width_ || rank(score) > worst_) {
      beams_.push_back({std::move(ids), score});
      if (beams_.size() > width_) {
        auto worst = std::min_element(beams_.begin(), beams_.end(), by_score);
        beams_.erase(worst);
        worst_ = rank(std::min_element(beams_.begin(), beams_.end(), by_score)->score);
      } else {
        worst_ = std::min(rank(score), worst_);
      }
    }
  }

  // No open beam can still do better than the worst kept hypothesis (Megatron's heuristic bound:
  // the best candidate's sum over the current length).
  bool done(double best_sum_logprobs, std::int64_t length) const {
    return beams_.size() >= width_ && worst_ >= best_sum_logprobs / std::pow(static_cast<double>(length), penalty_);
  }

  std::vector<BeamHypothesis> best_first() && {
    std::stable_sort(beams_.begin(), beams_.end(),
                     [](const auto& a, const auto& b) { return better_beam_score(a.score, b.score); });
    return std::move(beams_);
  }

 private:
  // worst_ as a number: a NaN score counts as −∞ (so it never beats a kept one).
  static double rank(double score) { return std::isnan(score) ? -std::numeric_limits<double>::infinity() : score; }
  static bool by_score(const BeamHypothesis& a, const BeamHypothesis& b) { return better_beam_score(b.score, a.score); }
  std::size_t width_;
  double penalty_;
  std::vector<BeamHypothesis> beams_;
  double worst_ = 1e9;
};

struct Beam {
  std::vector<std::int32_t> ids;  // generated so far
  double sum = 0;                 // of their logprobs
};

struct Candidate {
  double sum;
  std::size_t beam;
  std::int32_t token;
};

// log_softmax of one row, in double.
void log_softmax(const float* logits, std::int64_t vocab, std::vector<double>& out) {
  const double top = *std::max_element(logits, logits + vocab);
  double total = 0;
  for (std::int64_t v = 0; v < vocab; ++v) total += std::exp(static_cast<double>(logits[v]) - top);
  const double log_total = std::log(total);
  out.resize(static_cast<std::size_t>(vocab));
  for (std::int64_t v = 0; v < vocab; ++v) out[static_cast<std::size_t>(v)] = logits[v] - top - log_total;
}

}  // namespace

std::vector<BeamHypothesis> beam_search(Generator& generator, const Tokenizer& tokenizer,
                                        const std::vector<std::int32_t>& prompt, const BeamSearchOptions& o) {
  if (prompt.empty()) throw Error("beam_search: an empty prompt (give at least one token, e.g. end of document)");
  if (o.beam_width < 1 || o.max_new_tokens < 1)
    throw Error(fmt::format("beam_search: beam_width {} and max_new_tokens {} must be ≥ 1", o.beam_width,
                            o.max_new_tokens));
  const auto width = static_cast<std::size_t>(o.beam_width);
  NewlineTokens newlines(tokenizer);
  Hypotheses finished(o.beam_width, o.length_penalty);
  std::vector<Beam> beams{Beam{}};
  std::unique_ptr<GenerationSession> session;
  Tensor logits;
  if (o.use_kv_cache) {
    // The prompt and every token a beam can add (the Generator caps it at its sequence length).
    SessionStart s = generator.start_session({prompt}, static_cast<std::int64_t>(prompt.size()) +
                                                              std::min<std::int64_t>(o.max_new_tokens, INT32_MAX));
    session = std::move(s.session);
    logits = std::move(s.logits);
  }
  bool done = false;
  std::vector<double> logprobs;
  for (std::int64_t step = 0; step < o.max_new_tokens && !done; ++step) {
    if (!session) {
      // Every open beam has the same length: one batch of full contexts.
      const std::size_t T = prompt.size() + static_cast<std::size_t>(step);
      std::vector<std::int32_t> tokens;
      tokens.reserve(beams.size() * T);
      for (const Beam& b : beams) {
        tokens.insert(tokens.end(), prompt.begin(), prompt.end());
        tokens.insert(tokens.end(), b.ids.begin(), b.ids.end());
      }
      logits = generator.next_token_logits(
          Tensor::from<std::int32_t>({static_cast<std::int64_t>(beams.size()), static_cast<std::int64_t>(T)}, tokens));
    }
    const Tensor cpu = logits.to(Device::cpu());
    if (cpu.dim() != 2 || cpu.size(0) != static_cast<std::int64_t>(beams.size()))
      throw Error(fmt::format("beam_search: the model gave logits {} for {} beams", cpu.str(), beams.size()));
    const std::int64_t V = cpu.size(1);
    float* rows = cpu.data<float>();
    if (!std::all_of(rows, rows + cpu.numel(), [](float v) { return std::isfinite(v); }))
      throw NonFiniteLogits(fmt::format(
          "the model computed non-finite logits (NaN or infinity) for token {} of the beam search", step + 1));
    std::vector<Candidate> candidates;
    candidates.reserve(beams.size() * static_cast<std::size_t>(V));
    for (std::size_t b = 0; b < beams.size(); ++b) {
      float* row = rows + static_cast<std::int64_t>(b) * V;
      if (o.prevent_newline_after_colon)
        newlines.suppress_after_colon(beams[b].ids.empty() ? prompt.back() : beams[b].ids.back(), row, V);
      log_softmax(row, V, logprobs);
      for (std::int64_t v = 0; v < V; ++v)
        candidates.push_back({beams[b].sum + logprobs[static_cast<std::size_t>(v)], b, static_cast<std::int32_t>(v)});
    }
    // The 2·width best, best first (ties: the earlier beam, then the smaller id, so every rank of a
    // tensor-parallel server orders alike).
    const std::size_t keep = std::min(candidates.size(), 2 * width);
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep), candidates.end(),
                      [](const Candidate& a, const Candidate& b) {
                        if (a.sum != b.sum) return a.sum > b.sum;
                        return a.beam != b.beam ? a.beam < b.beam : a.token < b.token;
                      });
    std::vector<Beam> next;
    std::vector<std::int64_t> parents;
    for (std::size_t rank = 0; rank < keep && next.size() < width; ++rank) {
      const Candidate& c = candidates[rank];
      if (c.token == o.stop_token) {
        if (rank < width) finished.add(beams[c.beam].ids, c.sum, step + 1);
        continue;
      }
      Beam extended{beams[c.beam].ids, c.sum};
      extended.ids.push_back(c.token);
      next.push_back(std::move(extended));
      parents.push_back(static_cast<std::int64_t>(c.beam));
    }
    done = finished.done(candidates.front().sum, step + 1) || next.empty();
    beams = std::move(next);
    if (done || step + 1 == o.max_new_tokens) break;
    if (session) {
      session->select_rows(parents);
      std::vector<std::int32_t> tokens;
      for (const Beam& b : beams) tokens.push_back(b.ids.back());
      logits = session->step(tokens);
    }
  }
  // Out of steps: the open beams compete too.
  if (!done)
    for (Beam& b : beams) {
      const auto length = static_cast<std::int64_t>(b.ids.size());
      finished.add(std::move(b.ids), b.sum, length);
    }
  return std::move(finished).best_first();
}

}  // namespace tessera
