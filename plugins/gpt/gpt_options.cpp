#include "gpt_options.hpp"

namespace tessera::gpt {

GptOptions read_gpt_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed, std::int64_t tp,
                            std::int64_t pp, std::int64_t vpp, bool sequence_parallel) {
  GptOptions o = read_transformer_options(s, vocab_size, seed, tp, pp, vpp, sequence_parallel, "gpt");
  read_llama_style_options(s, o, tp);  // rope, RMSNorm, SwiGLU, untied head, no biases (docs/llama.md)
  return o;
}

}  // namespace tessera::gpt
