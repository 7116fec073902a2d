#include "tessera/nn/parameter.hpp"

namespace tessera {

std::int64_t count_elements(const std::vector<Parameter*>& params) {
  std::int64_t n = 0;
  for (const Parameter* p : params) n += p->value.numel();
  return n;
}

void move_parameters(const std::vector<Parameter*>& params, Device device) {
  for (Parameter* p : params) {
    p->value = p->value.to(device);
    p->grad = p->grad.to(device);
  }
}

}  // namespace tessera
