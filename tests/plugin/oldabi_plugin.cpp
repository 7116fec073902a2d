// libtessera_test_oldabi.so: a plugin built against another plugin ABI than this core's.
#include "greeter.hpp"
#include "tessera/plugin.hpp"

#undef TESSERA_PLUGIN_ABI_VERSION
#define TESSERA_PLUGIN_ABI_VERSION 999

namespace {
std::unique_ptr<tessera::test::Greeter> make_old(const tessera::ConfigSection&) { return nullptr; }
}  // namespace

TESSERA_PLUGIN(greeter, old, make_old)
