// Host↔device traffic of one training iteration of the small GPT on `device` (a backend plugin's
// name), after a first iteration that may set things up: the sim device's and the cuda backend's
// tests hold it small and independent of depth.
#pragma once
#include <string>

#include "tessera/backend.hpp"
#include "tessera/config.hpp"
#include "tessera/train/trainer.hpp"
#include "training_corpus.hpp"

// `model_extra`: [model] keys added to the small GPT's.
inline tessera::TransferStats traffic_per_iteration(const std::string& device, int layers,
                                                    const std::string& model_extra = "") {
  using namespace tessera;
  const Device d = device_named(device);
  Trainer t(Config::from_string(small_gpt_run(layers, device, 4, "", model_extra), device + ".toml"));
  t.train_step(1);
  const TransferStats before = backend_of(d).transfer_stats();
  t.train_step(2);
  const TransferStats after = backend_of(d).transfer_stats();
  return TransferStats{after.to_device - before.to_device, after.to_host - before.to_host,
                       after.synchronizations - before.synchronizations};
}
