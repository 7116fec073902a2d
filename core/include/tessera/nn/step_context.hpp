// What a module's forward and backward need to know about the step they run in.
#pragma once
#include <cstdint>

#include "tessera/nn/activation_store.hpp"

namespace tessera {

struct StepContext {
  ActivationStore& store;
  bool training = true;           // false: no activations saved, no dropout
  std::uint64_t seed = 0;         // run seed; dropout masks derive from it, the step and microbatch
  std::int64_t iteration = 0;
  std::int64_t microbatch = 0;
  // d(objective)/d(this microbatch's loss): 1/num_microbatches for gradient accumulation. Losses
  // that fuse their backward into forward (the LM head) need it at forward time.
  float loss_grad_scale = 1.0f;

  // A dropout seed unique to (run seed, iteration, microbatch, site).
  std::uint64_t dropout_seed(std::uint64_t site) const;
};

}  // namespace tessera
