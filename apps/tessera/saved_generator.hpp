// A saved model loaded for generation (`tessera generate`, `tessera serve`): its config with the
// default plugins, its tokenizer, the model with its weights, and the model's Generator. The config's
// training-only sections are accepted as they are; [model] and [tokenizer] are checked key by key as
// train checks them.
//
// Tensor parallelism (tp > 1, under mpirun -np tp): every rank builds the model over a tp-sized
// layout (pp = dp = 1) and loads its shard of the saved weights, whatever layout saved them. All
// ranks must then call the Generator together, in the same order; its logits are rank 0's on every
// rank (rank_zero_logits.hpp), so the same seeded sampling picks the same tokens everywhere.
#pragma once
#include <memory>
#include <string>

#include "tessera/generation.hpp"
#include "tessera/model.hpp"
#include "tessera/parallel/parallel.hpp"
#include "tessera/plugin.hpp"
#include "tessera/tokenizer.hpp"
#include "tessera/train/saved_model.hpp"

namespace tessera::app {

struct SavedGenerator {
  SavedModel saved;
  std::shared_ptr<const Parallel> parallel;  // null: one process (tp = 1)
  PluginPtr<Tokenizer> tokenizer;
  PluginPtr<Model> model;
  std::unique_ptr<Generator> lockstep;  // tp > 1: the model's Generator with rank 0's logits everywhere
  Generator* generator = nullptr;       // the one to use; never null

  int rank() const { return parallel ? parallel->layout.rank() : 0; }
};

// `load`: a save folder (its final weights, else its latest checkpoint) or a checkpoint folder.
// `tp`: the tensor-parallel size, which must be the launcher's world size (1 without one); anything
// else is a ConfigError naming `command` ("tessera serve") and how to launch it. Collective for tp > 1.
SavedGenerator load_saved_generator(const std::string& load, int tp = 1, const std::string& command = "tessera");

}  // namespace tessera::app
