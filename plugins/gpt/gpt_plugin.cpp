// The "gpt" model plugin: reads [model] (gpt_options.cpp) and builds a GptModel. Key names follow
// Megatron-LM's arguments (docs/configs.md lists them all). gpt_plan.cpp exports the same model's
// costs (kind "model_plan") for `tessera plan`.
#include "gpt_model.hpp"
#include "gpt_options.hpp"
#include "tessera/config.hpp"
#include "tessera/plugin.hpp"

namespace tessera::gpt {

namespace {

std::unique_ptr<Model> make_gpt_model(const ConfigSection& s, const ModelContext& context) {
  const std::int64_t tp = context.parallel ? context.parallel->layout.tp() : 1;
  const std::int64_t pp = context.parallel ? context.parallel->layout.pp() : 1;
  const std::int64_t vpp = context.parallel ? context.parallel->layout.vpp() : 1;
  const bool sp = context.parallel && context.parallel->layout.sequence_parallel();
  if (context.parallel) refuse_pipeline_split(context.parallel->layout.pipeline_split_rank(), "gpt");
  return std::make_unique<GptModel>(read_gpt_options(s, context.vocab_size, context.seed, tp, pp, vpp, sp),
                                    context.parallel, context.compute_dtype);
}

}  // namespace
}  // namespace tessera::gpt

TESSERA_PLUGIN(model, gpt, tessera::gpt::make_gpt_model)
