// Reading [model] for the T5 plugin: the transformer keys (nn/transformer_options.hpp) plus the encoder /
// decoder keys (t5_model.hpp lists them), with the checks T5 adds: no sequence parallelism
// (cross-attention refuses it), no pipeline split yet.
#pragma once
#include "t5_model.hpp"

namespace tessera {
class ConfigSection;
}

namespace tessera::t5 {

T5Options read_t5_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed, std::int64_t tp,
                          std::int64_t pp, std::int64_t vpp, bool sequence_parallel);

}  // namespace tessera::t5
