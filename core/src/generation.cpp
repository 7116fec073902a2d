#include "tessera/generation.hpp"

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/model.hpp"

namespace tessera {

Generator& require_generator(Model& model, const std::string& plugin) {
  Generator* g = model.generator();
  if (!g)
    throw ConfigError(fmt::format("{} does not support generation (it implements no Generator, tessera/generation.hpp)",
                                  plugin));
  return *g;
}

}  // namespace tessera
