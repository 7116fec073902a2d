#include "bert_options.hpp"

#include <fmt/format.h>

#include "tessera/config.hpp"
#include "tessera/error.hpp"

namespace tessera::bert {

BertOptions read_bert_options(const ConfigSection& s, std::int64_t vocab_size, std::uint64_t seed,
                              const ParallelSizes& sizes) {
  BertOptions o;
  if (sizes.ep > 1)
    throw ConfigError(fmt::format("parallel.expert_model_parallel_size = {}: the bert model has no mixture-of-experts "
                                  "layers to split (the gpt model has: model.num_experts); set it to 1",
                                  sizes.ep));
  if (sizes.cp > 1)
    throw ConfigError(fmt::format("parallel.context_parallel_size = {}: the bert model does not support context "
                                  "parallelism (Tessera splits causal self-attention only; the gpt model takes it); "
                                  "set it to 1",
                                  sizes.cp));
  o.t = read_transformer_options(s, vocab_size, seed, sizes, "bert");
  o.binary_head = s.get_bool("bert_binary_head", true);  // Megatron's default
  return o;
}

}  // namespace tessera::bert
