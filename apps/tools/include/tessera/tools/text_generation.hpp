// The generation loop of `tessera generate` and, for a batch of prompts, of a generation server:
// sample one token at a time from a Generator, stop on a stop token (end of document, FIM sentinels),
// a stop string or the token budget, and hand out text as it becomes final. With the Generator's
// key/value cache when it has one (start_session; docs/generation.md), else a full forward per token.
//
// Stop strings are the remedy for FIM models that never learnt to end a middle (BigCode trained
// no end-of-middle token, a known complaint): the text is cut before the first stop string, and
// text that might still turn into one (a suffix that is a stop string's prefix, or an unfinished
// UTF-8 character) is held back until the next token settles it, so nothing shown is taken back.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/error.hpp"
#include "tessera/tools/sampling.hpp"

namespace tessera {

class Generator;
class Tokenizer;

// How much of generated text is final: cut before the first stop string; else all of it but a
// tail that could begin a stop string or is an incomplete character (U+FFFD from a lossy decode).
struct StopTextView {
  std::size_t shown = 0;  // bytes of the text that are final
  bool stopped = false;   // a stop string occurs at `shown`
};
StopTextView final_text(std::string_view text, const std::vector<std::string>& stop_strings);

struct TextGenerationOptions {
  std::int64_t max_new_tokens = 200;
  SamplingOptions sampling;
  std::uint64_t seed = 1234;
  std::vector<std::int32_t> stop_tokens;  // end generation, never shown (the end-of-document id, …)
  std::vector<std::string> stop_strings;  // end generation; the text is cut before the first one
  // Megatron's top_p_decay / top_p_bound: after each token top_p becomes max(top_p · decay, bound)
  // (next_top_p). 0: off.
  double top_p_decay = 0.0, top_p_bound = 0.0;
  // Megatron's newline rules (newline_tokens.hpp): end after a newline / a double newline (the
  // newline is part of the output); no newline right after a token ending with ":".
  bool stop_on_eol = false, stop_on_double_eol = false, prevent_newline_after_colon = false;
  // The model sees at most `window` tokens (its sequence length). Sliding keeps the last `window`
  // tokens; without it (a FIM prompt, whose first token must stay) generation ends at the window.
  std::int64_t window = 0;
  bool slide_window = true;
  // Use the Generator's key/value cache when it has one (start_session): the prompt in one forward,
  // then one token per step. The cache holds `window` tokens (the model's sequence length); once
  // the context outgrows it, generation goes on uncached with the sliding window (or, without
  // sliding, ends at the window as it would uncached). false: every token a full forward.
  bool use_kv_cache = true;
};

// The model's logits hold NaN or infinity: its weights are not a usable model.
class NonFiniteLogits : public Error {
 public:
  using Error::Error;
};

enum class StopReason { max_new_tokens, stop_token, stop_string, window, end_of_line };
std::string stop_reason_name(StopReason r);

struct GeneratedText {
  std::string text;                 // final text, stop string excluded
  std::vector<std::int32_t> ids;    // the tokens sampled (a stop token excluded)
  std::vector<double> logprobs;     // of each of ids: log_softmax of the model's raw logits
  std::int64_t cached_steps = 0;    // how many of the logits came from the key/value cache
  StopReason reason = StopReason::max_new_tokens;
};

// Generates after `prompt` (not empty). on_text receives each newly final piece of text, in order;
// their concatenation is the result's text. Non-finite logits throw NonFiniteLogits.
GeneratedText generate_text(Generator& generator, const Tokenizer& tokenizer, std::vector<std::int32_t> prompt,
                            const TextGenerationOptions& options,
                            const std::function<void(std::string_view)>& on_text = {});

// Generates after each of `prompts` what generate_text gives it alone (to the rounding of batched
// logits), row b sampled with seeds[b] (options.seed unused): the prompts that fit the window are the
// rows of ONE cached session — one prefill, then one step per token for the rows still generating; a
// row that stops, or whose cache is full (it slides on uncached), leaves the session. The others (no
// cache, or a prompt longer than the window) take a full forward each per token. on_text(b, piece)
// as generate_text's, per row; a NonFiniteLogits names its prompt ("prompt b: …").
std::vector<GeneratedText> generate_texts(Generator& generator, const Tokenizer& tokenizer,
                                          std::vector<std::vector<std::int32_t>> prompts,
                                          const TextGenerationOptions& options, const std::vector<std::uint64_t>& seeds,
                                          const std::function<void(std::size_t, std::string_view)>& on_text = {});

}  // namespace tessera
