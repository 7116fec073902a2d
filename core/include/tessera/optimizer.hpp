// Optimizer interface that optimizer plugins (adam, later distributed_adam) implement.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tessera/nn/parameter.hpp"

namespace tessera {

class ConfigSection;

class Optimizer {
 public:
  using FactorySignature = std::unique_ptr<Optimizer>(const ConfigSection& optimizer,
                                                      const std::vector<Parameter*>& params);
  virtual ~Optimizer() = default;
  // One update from the accumulated grads. grad_scale multiplies every grad first (the clipping
  // coefficient, fused into the update pass).
  virtual void step(float lr, float grad_scale) = 0;
  // Elements of optimizer state held by this process (memory accounting and tests).
  virtual std::int64_t state_elements() const = 0;
  virtual std::string describe() const = 0;
};

}  // namespace tessera
