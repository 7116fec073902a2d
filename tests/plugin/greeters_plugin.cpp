// libtessera_test_greeters.so: a working greeter, and factories that fail in each way a real plugin
// might (bad config, bad file, bad shape, communication, a plain tessera::Error, anything else).
#include <stdexcept>

#include "greeter.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/plugin.hpp"

namespace tessera::test {
namespace {

class Hello final : public Greeter {
 public:
  explicit Hello(std::string greeting) : greeting_(std::move(greeting)) {}
  std::string greet(const std::string& who) const override { return greeting_ + ", " + who; }

 private:
  std::string greeting_;
};

std::unique_ptr<Greeter> make_hello(const ConfigSection& section) {
  return std::make_unique<Hello>(section.get_string("greeting", "hello"));
}

std::unique_ptr<Greeter> make_strict(const ConfigSection& section) {
  throw ConfigError(section.name() + ".greeting: strict greeters need a greeting");
}

std::unique_ptr<Greeter> make_corrupt(const ConfigSection&) { throw FormatError("greetings.bin is truncated"); }

std::unique_ptr<Greeter> make_misshapen(const ConfigSection&) { throw ShapeError("greeting table is [0, 3]"); }

std::unique_ptr<Greeter> make_lonely(const ConfigSection&) { throw CommError("no rank 1 to greet"); }

std::unique_ptr<Greeter> make_vague(const ConfigSection&) { throw Error("something went wrong"); }

std::unique_ptr<Greeter> make_crash(const ConfigSection&) { throw std::runtime_error("out of greetings"); }

}  // namespace
}  // namespace tessera::test

TESSERA_PLUGIN(greeter, hello, tessera::test::make_hello)
TESSERA_PLUGIN(greeter, strict, tessera::test::make_strict)
TESSERA_PLUGIN(greeter, corrupt, tessera::test::make_corrupt)
TESSERA_PLUGIN(greeter, crash, tessera::test::make_crash)
TESSERA_PLUGIN(greeter, misshapen, tessera::test::make_misshapen)
TESSERA_PLUGIN(greeter, lonely, tessera::test::make_lonely)
TESSERA_PLUGIN(greeter, vague, tessera::test::make_vague)
