// Next-token sampling from logits: greedy (temperature 0), temperature, top-k and top-p (nucleus).
#pragma once
#include <cstdint>
#include <random>

namespace tessera {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  std::int64_t top_k = 0;    // 0: off
  double top_p = 1.0;        // 1: off
};

// Megatron's top_p_decay: the top_p of the next token after one is sampled with `top_p` —
// top_p · decay, not below `bound` (0: no bound).
double next_top_p(double top_p, double decay, double bound);

// logits: `vocab` floats. Returns the chosen id.
std::int32_t sample_token(const float* logits, std::int64_t vocab, const SamplingOptions& o, std::mt19937_64& rng);

// log_softmax(logits)[id], in double: the log-probability the model gave token `id` (Megatron's
// logprobs: of the raw logits, before temperature, top-k or top-p).
double token_logprob(const float* logits, std::int64_t vocab, std::int32_t id);

}  // namespace tessera
