// A tiny plugin interface used only by the plugin registry tests.
#pragma once
#include <memory>
#include <string>

#include "tessera/config.hpp"

namespace tessera::test {

class Greeter {
 public:
  using FactorySignature = std::unique_ptr<Greeter>(const ConfigSection& section);
  virtual ~Greeter() = default;
  virtual std::string greet(const std::string& who) const = 0;
};

}  // namespace tessera::test
