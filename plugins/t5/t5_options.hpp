// Reading [model] for the T5 plugin: the transformer keys (nn/transformer_options.hpp) plus the encoder /
// decoder keys (t5_model.hpp lists them), with the checks T5 adds: no sequence parallelism
// (cross-attention refuses it), no interleaved schedule, and under pipeline parallelism a split rank
// whose encoder and decoder stages divide the two depths.
#pragma once
#include "t5_model.hpp"
#include "tessera/parallel/parallel_layout.hpp"

namespace tessera {
class ConfigSection;
}

namespace tessera::t5 {

T5Options read_t5_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                          const ParallelSizes& parallel);

}  // namespace tessera::t5
