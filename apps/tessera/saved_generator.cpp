#include "saved_generator.hpp"

#include <vector>

#include "plugin_defaults.hpp"
#include "tessera/config.hpp"
#include "tessera/train/components.hpp"

namespace tessera::app {

namespace {

// Sections a saved model's config has for training only are declared wholesale; [model] and
// [tokenizer] are checked key by key as train does.
void check_model_keys(const Config& config) {
  for (const std::string& name : config.section_names())
    if (name != "model" && name != "tokenizer") {
      ConfigSection s = config.section(name);
      for (const std::string& key : s.keys()) s.declare(key);
    }
  config.check_no_unknown_keys();
}

}  // namespace

SavedGenerator load_saved_generator(const std::string& load) {
  SavedGenerator g;
  g.saved = open_saved_model(load);
  g.saved.config = with_plugin_defaults(g.saved.config);
  g.tokenizer = build_tokenizer(g.saved.config);
  g.model = build_model(g.saved.config, g.tokenizer->vocab_size(), 0);
  check_model_keys(g.saved.config);
  g.generator = &require_generator(*g.model, plugin_label(g.model));
  std::vector<Parameter*> params;
  g.model->collect_parameters(params);
  load_saved_weights(g.saved, params);
  return g;
}

}  // namespace tessera::app
