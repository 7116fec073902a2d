// The request and response of `tessera serve` (Megatron-LM's text generation API, PUT /api): parsing
// and validating a request's JSON, generating for its prompts, and the response JSON. Apart from the
// HTTP server, so that it is tested without one. Every invalid request is a BadRequest (HTTP 400)
// naming the field; docs/generation.md "Serving" lists the fields and the differences from Megatron.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/error.hpp"

namespace tessera {

class Generator;
class Tokenizer;

// An invalid request: answered HTTP 400 with {"error": what()}.
class BadRequest : public Error {
 public:
  using Error::Error;
};

inline constexpr std::size_t kMaxPrompts = 128;
inline constexpr std::int64_t kMaxBeamWidth = 128;  // the beams are the rows of one batch
inline constexpr double kMaxLengthPenalty = 10;   // length_penalty in [-10, 10]

struct GenerationRequest {
  std::vector<std::string> prompts;        // 1 … 128
  std::int64_t tokens_to_generate = 64;    // ≥ 0; 0 (scoring: the prompts' logprobs) needs logprobs
  double temperature = 1.0;                // (0, 100]
  std::int64_t top_k = 0;                  // 0 … 1000; 0 = off, 1 = greedy
  double top_p = 0.0;                      // [0, 1]; 0 = off; not with top_k > 0
  bool logprobs = false;
  bool add_BOS = false;                    // prepend the end-of-document id
  std::optional<std::int64_t> stop_token;  // default: the end-of-document id
  std::int64_t random_seed = -1;           // -1: any; ≥ 0: reproducible
  std::vector<std::string> stop;           // stop strings (Tessera's addition)
  double top_p_decay = 0.0;                // (0, 1]; 0 = off; needs top_p > 0
  double top_p_bound = 0.0;                // (0, top_p]; 0 = off; needs top_p > 0
  bool stop_on_eol = false;                // newline_tokens.hpp
  bool stop_on_double_eol = false;
  bool prevent_newline_after_colon = false;
  bool no_log = false;                     // accepted: tessera serve logs no request anyway
  std::optional<std::int64_t> beam_width;  // 1 … 128: beam search (one prompt, tokens_to_generate > 0)
  double length_penalty = 1.0;             // beam search only
};

// Parses and checks a request body. Throws BadRequest for malformed JSON, a body that is not an
// object, an unknown field (legacy max_len / sentences included), a wrong type or a value out of
// range, naming the field.
GenerationRequest parse_generation_request(std::string_view body);

struct GenerationResponse {
  std::vector<std::string> text;                               // prompt + generation, per prompt (beam)
  std::vector<std::vector<std::string>> segments;              // token strings of prompt + generation
  std::optional<std::vector<std::vector<double>>> logprobs;    // per generated (scoring: prompt) token
  std::optional<std::vector<double>> scores;                   // beam search: per beam, best first
};

// The checks of `r` that need the model, before any forward: a prompt (with its BOS) plus
// tokens_to_generate longer than `seq_length` ("would exceed the context"), an empty prompt
// without add_BOS, a stop_token outside the vocabulary — each a BadRequest. Returns the prompts'
// token ids (BOS included). A tensor-parallel server runs it on rank 0 before it hands the request
// to the other ranks, so that they never see an invalid one.
std::vector<std::vector<std::int32_t>> tokenize_generation_request(const Tokenizer& tokenizer,
                                                                   std::int64_t seq_length,
                                                                   const GenerationRequest& r);

// Generates for every prompt of `r` (checked by tokenize_generation_request first), the prompts as the
// rows of one batch through generate_texts (one key/value cache session; each prompt what it gives
// alone, its own seed and stops); scoring (tokens_to_generate 0) likewise in one session; with
// beam_width, the beams of its one prompt through beam_search (beam_search.hpp), best first. Without random_seed,
// each prompt's seed is drawn from std::mt19937_64 seeded with `entropy`: ranks that generate in
// lockstep pass the same value and sample the same tokens.
GenerationResponse generate_for_request(Generator& generator, const Tokenizer& tokenizer, std::int64_t seq_length,
                                        const GenerationRequest& r, std::uint64_t entropy);
// The same, `entropy` from std::random_device.
GenerationResponse generate_for_request(Generator& generator, const Tokenizer& tokenizer, std::int64_t seq_length,
                                        const GenerationRequest& r);

// {"text": […], "segments": […], "logprobs": […] | null}, or for beam search {"text": […], "segments":
// […], "scores": […]}; invalid UTF-8 in token strings becomes U+FFFD.
std::string generation_response_json(const GenerationResponse& response);
// {"error": message}
std::string error_json(std::string_view message);

}  // namespace tessera
