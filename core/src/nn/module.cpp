#include "tessera/nn/module.hpp"

#include "tessera/error.hpp"

namespace tessera {

Tensor Module::backward_with_input(StepContext&, const Tensor&, const Tensor&) {
  throw Error("this module keeps its own input; backward_with_input is for modules built with keep_input = false");
}

}  // namespace tessera
