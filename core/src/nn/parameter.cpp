#include "tessera/nn/parameter.hpp"

namespace tessera {

std::int64_t count_elements(const std::vector<Parameter*>& params) {
  std::int64_t n = 0;
  for (const Parameter* p : params) n += p->value.numel();
  return n;
}

}  // namespace tessera
