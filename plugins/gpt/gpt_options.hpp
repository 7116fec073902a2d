// Reading [model] for the GPT plugin, shared by the model (gpt_plugin.cpp) and its plan
// (gpt_plan.cpp), so that both accept exactly the same keys and raise the same ConfigErrors.
#pragma once
#include <cstdint>

#include "gpt_model.hpp"

namespace tessera {
class ConfigSection;
}

namespace tessera::gpt {

// Reads every [model] key (docs/configs.md) and checks it against the tensor- and pipeline-parallel
// sizes: ConfigError naming the key and its origin for anything the model cannot be built with.
// The vocabulary is padded to a multiple of make_vocab_size_divisible_by × tp (Megatron-LM).
GptOptions read_gpt_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                            const ParallelSizes& sizes);

}  // namespace tessera::gpt
