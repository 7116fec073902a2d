// The "t5" model plugin: reads [model] (t5_options.cpp) and builds a T5Model. Keys are GPT's
// (docs/configs.md) plus the encoder/decoder keys of docs/t5.md.
#include "t5_model.hpp"
#include "t5_options.hpp"
#include "tessera/config.hpp"
#include "tessera/plugin.hpp"

namespace tessera::t5 {

namespace {

std::unique_ptr<Model> make_t5_model(const ConfigSection& s, const ModelContext& context) {
  const auto options = read_t5_options(s, context.vocab_size, context.seed, context.sizes());
  return std::make_unique<T5Model>(options, context.parallel, context.compute_dtype);
}

}  // namespace
}  // namespace tessera::t5

TESSERA_PLUGIN(model, t5, tessera::t5::make_t5_model)
