// BERT's last-stage heads (bert_model.hpp): the LM head's transform (dense → GELU → LayerNorm) and
// its per-vocabulary bias, the pooler and the sentence-order (binary) head.
#pragma once
#include <memory>

#include "bert_model.hpp"

namespace tessera::bert {

struct BertModel::Heads {
  Heads(const BertOptions& o, const TpGroup& tp);
  void collect_parameters(std::vector<Parameter*>& out);

  Linear lm_dense;
  LayerNorm lm_norm;
  Parameter lm_bias;                      // this rank's vocabulary shard, like the word embedding
  std::unique_ptr<Linear> pooler, binary;  // with the binary head
};

}  // namespace tessera::bert
