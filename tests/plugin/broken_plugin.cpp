// libtessera_test_broken.so: lists fine but cannot be loaded (it needs a function nobody defines).
#include "greeter.hpp"
#include "tessera/plugin.hpp"

extern "C" int tessera_test_missing_function();

namespace {
class Broken final : public tessera::test::Greeter {
 public:
  std::string greet(const std::string&) const override { return std::to_string(tessera_test_missing_function()); }
};
std::unique_ptr<tessera::test::Greeter> make_broken(const tessera::ConfigSection&) {
  return std::make_unique<Broken>();
}
}  // namespace

TESSERA_PLUGIN(greeter, broken, make_broken)
