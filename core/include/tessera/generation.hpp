// Generation is an optional interface a model plugin may implement (GPT does; an encoder such as
// BERT does not): Model::generator() returns it, or null. `tessera generate` asks for it.
#pragma once
#include <string>

#include "tessera/tensor.hpp"

namespace tessera {

class Model;

class Generator {
 public:
  virtual ~Generator() = default;
  // Logits f32 [B, vocab_size] for the next token after each row of tokens i32 [B, T]; T may be
  // anything up to the model's sequence length. Needs the whole model in this process (pp = 1).
  virtual Tensor next_token_logits(const Tensor& tokens) = 0;
};

// The model's Generator; a ConfigError "<plugin> does not support generation" when it has none.
// plugin: "model plugin 'gpt'" (plugin_label).
Generator& require_generator(Model& model, const std::string& plugin);

}  // namespace tessera
