// The "bert" model plugin: reads [model] (bert_options.cpp) and builds a BertModel. Keys are GPT's
// (docs/configs.md) plus bert_binary_head.
#include "bert_model.hpp"
#include "bert_options.hpp"
#include "tessera/config.hpp"
#include "tessera/plugin.hpp"

namespace tessera::bert {

namespace {

std::unique_ptr<Model> make_bert_model(const ConfigSection& s, const ModelContext& context) {
  const std::int64_t tp = context.parallel ? context.parallel->layout.tp() : 1;
  const std::int64_t pp = context.parallel ? context.parallel->layout.pp() : 1;
  const std::int64_t vpp = context.parallel ? context.parallel->layout.vpp() : 1;
  const bool sp = context.parallel && context.parallel->layout.sequence_parallel();
  if (context.parallel) refuse_pipeline_split(context.parallel->layout.pipeline_split_rank(), "bert");
  return std::make_unique<BertModel>(read_bert_options(s, context.vocab_size, context.seed, tp, pp, vpp, sp),
                                     context.parallel, context.compute_dtype);
}

}  // namespace
}  // namespace tessera::bert

TESSERA_PLUGIN(model, bert, tessera::bert::make_bert_model)
