// The "bert" model plugin: reads [model] (bert_options.cpp) and builds a BertModel. Keys are GPT's
// (docs/configs.md) plus bert_binary_head.
#include "bert_model.hpp"
#include "bert_options.hpp"
#include "tessera/config.hpp"
#include "tessera/plugin.hpp"

namespace tessera::bert {

namespace {

std::unique_ptr<Model> make_bert_model(const ConfigSection& s, const ModelContext& context) {
  const ParallelSizes p = context.sizes();
  refuse_pipeline_split(p.pipeline_split_rank, "bert");
  const auto options = read_bert_options(s, context.vocab_size, context.seed, p);
  return std::make_unique<BertModel>(options, context.parallel, context.compute_dtype);
}

}  // namespace
}  // namespace tessera::bert

TESSERA_PLUGIN(model, bert, tessera::bert::make_bert_model)
