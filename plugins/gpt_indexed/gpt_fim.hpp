// Fill-in-the-middle (FIM) for code models, as BigCode's Megatron-LM gpt_dataset.py applies it to
// each sample's seq_length + 1 token window (docs/fim.md):
//
//   split the window on EOD; each segment goes through split_and_permute; EODs are put back; the
//   result is truncated to, or right-padded with <fim_pad> to, the window's length.
//   split_and_permute(seg): without fim_split_sample, permute(seg, fim_rate). With it, a segment
//   holding no split token is permute(seg, fim_rate); else one coin binomial(1, fim_rate) decides
//   whether the segment is touched at all, and if so each fragment between split tokens is
//   permute(frag, fragment_fim_rate), split tokens put back.
//   permute(seq, rate): if binomial(1, rate): text = decode(seq); two positions randint(0, len+1)
//   (code points), sorted; prefix/middle/suffix re-encoded separately; then binomial(1, spm_rate)
//   chooses SPM = [PRE, SUF] suffix [MID] prefix middle, else PSM = [PRE] prefix [SUF] suffix [MID]
//   middle. Otherwise seq is unchanged.
//
// The draws are numpy RandomState's (numpy_random.hpp), in BigCode's order, so a Python transcription
// of BigCode's code given the same generator produces the same sample. Two deliberate deviations:
//   1. The generator is seeded per sample, RandomState(fim_sample_seed(seed, index)), not one
//      generator per dataset object: a sample's FIM depends only on (seed, index), so resume, data
//      parallel ranks, pipeline layouts and access order all see the same sample.
//   2. An EOD at the window's start or right after another EOD (and likewise a split token at a
//      fragment's start or doubled) is kept; BigCode drops it, shortening the text it trains on.
// What is kept as BigCode does it: the tail after the last EOD is permuted even when empty (it can
// become [PRE, SUF, MID]); no end-of-middle token; pad is not masked out of the loss.
// Text that is not valid UTF-8 (a window cut inside a character) is split with each invalid byte
// counted as one character and its bytes kept (BigCode's decode turns them into U+FFFD).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tessera/data/numpy_random.hpp"

namespace tessera {
class Tokenizer;
}

namespace tessera::gpt_indexed {

struct FimOptions {
  double rate = 0.0;           // fim_rate: 0 = off
  double spm_rate = 0.5;       // fim_spm_rate
  double fragment_rate = 0.5;  // fragment_fim_rate
  std::string split_sample;    // fim_split_sample: a token's text, "" = none
};

// The sentinel ids, looked up in the tokenizer.
struct FimTokens {
  std::int32_t prefix = -1, middle = -1, suffix = -1, pad = -1;
  std::optional<std::int32_t> split;  // fim_split_sample's id
};

// Checks the rates are in [0, 1] (ConfigError naming the key; `where` is the config's origin, e.g.
// "run.toml: [data]").
void check_fim_options(const FimOptions& options, const std::string& where);

// Looks up <fim_prefix>, <fim_middle>, <fim_suffix>, <fim_pad> (falling back to the SantaCoder
// names <fim-prefix>…) and fim_split_sample (a special token, else text that encodes to one id).
// ConfigError naming the tokenizer and every missing token.
FimTokens find_fim_tokens(const Tokenizer& tokenizer, const FimOptions& options, const std::string& where);

// The seed of sample `index`'s generator: the high 32 bits of splitmix64(splitmix64(seed) ^ index).
std::uint32_t fim_sample_seed(std::uint64_t seed, std::int64_t index);

class FimTransform {
 public:
  FimTransform(const Tokenizer& tokenizer, FimTokens tokens, FimOptions options, std::int32_t eod);
  // Rewrites window (one sample's seq_length + 1 tokens) in place; its length is unchanged.
  void apply(std::vector<std::int32_t>& window, NumpyRandomState& rng) const;
  // The pieces, for tests: BigCode's permute (one segment) and fim_split_and_permute_sequence.
  std::vector<std::int32_t> permute(std::span<const std::int32_t> seq, double rate, NumpyRandomState& rng) const;
  std::vector<std::int32_t> split_and_permute(std::span<const std::int32_t> seq, NumpyRandomState& rng) const;

 private:
  const Tokenizer& tokenizer_;
  FimTokens tokens_;
  FimOptions options_;
  std::int32_t eod_;
};

// Byte offsets of each code point of text (an invalid byte counts as one), plus text.size() at the end.
std::vector<std::size_t> code_point_offsets(const std::string& text);

}  // namespace tessera::gpt_indexed
