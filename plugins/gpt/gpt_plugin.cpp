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
  const ParallelSizes p = context.sizes();
  refuse_pipeline_split(p.pipeline_split_rank, "gpt");
  const auto options = read_gpt_options(s, context.vocab_size, context.seed, p);
  return std::make_unique<GptModel>(options, context.parallel, context.compute_dtype);
}

}  // namespace
}  // namespace tessera::gpt

TESSERA_PLUGIN(model, gpt, tessera::gpt::make_gpt_model)
