// Reading [model] for the BERT plugin: the transformer keys (nn/transformer_options.hpp) plus
// bert_binary_head, shared by the model and its plan.
#pragma once
#include "bert_model.hpp"

namespace tessera {
class ConfigSection;
}

namespace tessera::bert {

BertOptions read_bert_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                              const ParallelSizes& sizes);

}  // namespace tessera::bert
