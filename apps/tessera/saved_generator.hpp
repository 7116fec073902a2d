// A saved model loaded for generation (`tessera generate`, `tessera serve`): its config with the
// default plugins, its tokenizer, the model with its weights in this one process, and the model's
// Generator. The config's training-only sections are accepted as they are; [model] and [tokenizer]
// are checked key by key as train checks them.
#pragma once
#include <string>

#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera::app {

struct SavedGenerator {
  SavedModel saved;
  PluginPtr<Tokenizer> tokenizer;
  PluginPtr<Model> model;
  Generator* generator = nullptr;  // the model's; never null
};

// `load`: a save folder (its final weights, else its latest checkpoint) or a checkpoint folder.
SavedGenerator load_saved_generator(const std::string& load);

}  // namespace tessera::app
