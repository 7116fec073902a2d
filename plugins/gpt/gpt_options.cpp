#include "gpt_options.hpp"

namespace tessera::gpt {

GptOptions read_gpt_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                            const ParallelSizes& sizes) {
  GptOptions o = read_transformer_options(s, vocab_size, seed, sizes, "gpt");
  read_llama_style_options(s, o, sizes.tp);  // rope, RMSNorm, SwiGLU, untied head, no biases (docs/llama.md)
  read_moe_options(s, o, sizes.tp);          // mixture of experts (docs/moe.md)
  return o;
}

}  // namespace tessera::gpt
