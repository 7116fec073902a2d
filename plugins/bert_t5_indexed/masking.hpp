// Megatron-LM's create_masked_lm_predictions (dataset_utils.py), the draws in its order so that a
// numpy RandomState seeded alike gives the same masks:
//
//   Candidates: every token but [CLS]/[SEP] starts a candidate, except a "##" continuation piece,
//   which joins the previous one (whole-word masking; a piece after a skipped [SEP] still joins the
//   candidate before it, as in Megatron).
//   Budget: num_to_predict = min(max_predictions, max(1, round(len(tokens) · masked_lm_prob))),
//   max_predictions = masked_lm_prob · target length (a float: the budget is its floor in effect).
//   shuffle(candidate starts); for each start, until the budget is met: n-gram length
//     BERT: n = choice(1..max_ngrams, p ∝ 1/n) (6/11, 3/11, 2/11 for 3);
//     T5:   n = min(geometric(0.2), max_ngrams);
//   the n whole words from that start; shorter ones while it would pass the budget; skipped if it
//   still would, or if it overlaps a masked token. Each of its tokens:
//     BERT: random() < 0.8 → [MASK]; else random() < 0.5 → kept; else randint(0, vocab_size);
//     T5:   [MASK] (the sample replaces each span by a sentinel anyway).
//   Megatron shuffles the candidates once more at the end; nothing draws after it, so that is left out.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "tessera/data/numpy_random.hpp"

namespace tessera::bert_t5_indexed {

struct MaskingOptions {
  double masked_lm_prob = 0.15;
  int max_ngrams = 3;
  bool geometric = false;    // T5's span lengths; BERT's otherwise
  bool bert_style = true;    // 80/10/10 replacement; false: every masked token becomes `mask`
  std::int32_t cls = -1, sep = -1, mask = -1;
  std::int64_t vocab_size = 0;
};

struct Masking {
  std::vector<std::int32_t> positions;  // ascending
  std::vector<std::int32_t> labels;     // the original token at each position
  std::vector<std::vector<std::int32_t>> spans;  // each masked n-gram's positions, by first position
};

// Masks `tokens` in place. continuation[id]: id is a "##" piece; every token must be in
// [0, continuation.size()) (the caller checks).
Masking create_masked_lm_predictions(std::vector<std::int32_t>& tokens, std::span<const std::uint8_t> continuation,
                                     const MaskingOptions& options, double max_predictions, NumpyRandomState& rng);

}  // namespace tessera::bert_t5_indexed
