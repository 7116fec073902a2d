#include "bert_options.hpp"

#include "tessera/config.hpp"

namespace tessera::bert {

BertOptions read_bert_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                              const ParallelSizes& sizes) {
  BertOptions o;
  o.t = read_transformer_options(s, vocab_size, seed, sizes, "bert");
  o.binary_head = s.get_bool("bert_binary_head", true);  // Megatron's default
  return o;
}

}  // namespace tessera::bert
