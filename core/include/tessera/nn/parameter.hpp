// A trainable tensor with its gradient and what the optimizer and the parallel layout need to know.
#pragma once
#include <string>
#include <vector>

#include "tessera/tensor.hpp"

namespace tessera {

struct Parameter {
  std::string name;    // dotted path, e.g. "layers.3.mlp.fc1.weight" (checkpoint key)
  Tensor value;        // f32
  Tensor grad;         // f32, same shape; accumulated (+=) over microbatches
  bool weight_decay = true;  // false for biases and norm weights (Megatron's default)

  Parameter(std::string n, const Shape& shape, bool decay = true)
      : name(std::move(n)), value(Tensor::zeros(shape)), grad(Tensor::zeros(shape)), weight_decay(decay) {}
};

std::int64_t count_elements(const std::vector<Parameter*>& params);

}  // namespace tessera
