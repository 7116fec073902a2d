#include "tessera/nn/step_context.hpp"

#include "tessera/nn/init.hpp"

namespace tessera {

std::uint64_t StepContext::dropout_seed(std::uint64_t site) const {
  return hash_name(seed ^ (static_cast<std::uint64_t>(iteration) << 20) ^ static_cast<std::uint64_t>(microbatch),
                   "dropout") ^ (site * 0x9e3779b97f4a7c15ULL);
}

}  // namespace tessera
