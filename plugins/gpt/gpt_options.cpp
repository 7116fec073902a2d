#include "gpt_options.hpp"

namespace tessera::gpt {

GptOptions read_gpt_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                            const ParallelSizes& sizes) {
  return read_gpt_style_options(s, vocab_size, seed, sizes, "gpt");
}

}  // namespace tessera::gpt
