// Megatron-LM's beam search (text_generation/generation.py beam_search_and_return_on_first_stage and
// beam_utils.py BeamHypotheses), for one prompt:
//   - every step, each open beam's log_softmax over the vocabulary is added to its score (the sum of
//     its tokens' logprobs); the first step expands the prompt alone;
//   - of the 2·beam_width best (beam, token) candidates, best first: the stop token ends a
//     hypothesis (when among the first beam_width; its score counts the stop token's logprob and its
//     length the stop token), any other token extends a beam, until beam_width beams are open;
//   - a hypothesis scores sum / length^length_penalty (length: generated tokens, the stop token
//     included); the best beam_width are kept;
//   - the search ends when beam_width hypotheses are kept and none beats the best candidate's sum over
//     the current length (BeamHypotheses.is_done), or after max_new_tokens steps, when the open beams
//     become hypotheses too.
// With the Generator's key/value cache when it has one: the prompt once, then one row per open beam,
// rows reordered to the chosen beams' parents (GenerationSession::select_rows); else a full forward
// over every beam's context per step.
#pragma once
#include <cstdint>
#include <vector>

namespace tessera {

class Generator;
class Tokenizer;

struct BeamSearchOptions {
  std::int64_t beam_width = 1;      // ≥ 1
  std::int64_t max_new_tokens = 1;  // ≥ 1; the prompt plus these must fit the model
  std::int32_t stop_token = 0;
  double length_penalty = 1.0;
  bool prevent_newline_after_colon = false;  // newline_tokens.hpp
  bool use_kv_cache = true;
};

struct BeamHypothesis {
  std::vector<std::int32_t> ids;  // the generated tokens, the stop token excluded
  double score = 0;               // sum of logprobs / length^length_penalty
};

// Whether score a ranks before b, best first: NaN scores rank after every other.
bool better_beam_score(double a, double b);

// Best first, at most beam_width. Non-finite logits throw NonFiniteLogits (text_generation.hpp).
std::vector<BeamHypothesis> beam_search(Generator& generator, const Tokenizer& tokenizer,
                                        const std::vector<std::int32_t>& prompt, const BeamSearchOptions& options);

}  // namespace tessera
