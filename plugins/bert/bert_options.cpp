#include "bert_options.hpp"

#include "tessera/config.hpp"

namespace tessera::bert {

BertOptions read_bert_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed, std::int64_t tp,
                              std::int64_t pp, std::int64_t vpp, bool sequence_parallel) {
  BertOptions o;
  o.t = read_transformer_options(s, vocab_size, seed, tp, pp, vpp, sequence_parallel, "bert");
  o.binary_head = s.get_bool("bert_binary_head", true);  // Megatron's default
  return o;
}

}  // namespace tessera::bert
