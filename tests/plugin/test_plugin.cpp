// Plugin registry: listing without loading, creating by name, miss messages, ABI and load errors,
// exceptions from factories, and the `tessera plugins` command.
#include <dlfcn.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <typeinfo>

#include <catch2/catch.hpp>

#include "expect_error.hpp"
#include "greeter.hpp"
#include "tessera/config.hpp"
#include "tessera/error.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/plugin.hpp"

using namespace tessera;
using tessera::test::Greeter;
using Catch::Contains;

namespace {

const std::string kPlugins = TEST_PLUGIN_DIR;

// Set here too (not only by CTest) so the test binary also runs on its own.
void use_plugin_path(const std::string& path = kPlugins) { ::setenv("TESSERA_PLUGIN_PATH", path.c_str(), 1); }

bool is_loaded(const std::string& library) {
  void* h = ::dlopen(library.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (h) ::dlclose(h);
  return h != nullptr;
}

std::vector<std::string> names(const std::vector<PluginInfo>& plugins) {
  std::vector<std::string> out;
  for (const auto& p : plugins) out.push_back(p.kind + "/" + p.name);
  return out;
}

}  // namespace

// First, so that no other case has loaded the libraries yet (Catch runs cases in file order).
TEST_CASE("plugins are listed without loading their libraries", "[unit]") {
  use_plugin_path();
  const std::string greeters = kPlugins + "/libtessera_test_greeters.so";
  const bool loaded_before = is_loaded(greeters);
  const auto plugins = available_plugins("greeter");
  using Catch::VectorContains;
  REQUIRE_THAT(names(plugins), VectorContains(std::string("greeter/hello")) &&
                                   VectorContains(std::string("greeter/strict")) &&
                                   VectorContains(std::string("greeter/old")) &&
                                   VectorContains(std::string("greeter/broken")));
  for (const auto& p : plugins) {
    if (p.name == "hello") REQUIRE(p.library.filename() == "libtessera_test_greeters.so");
    if (p.name == "old") REQUIRE(p.library.filename() == "libtessera_test_oldabi.so");
  }
  if (!loaded_before) REQUIRE_FALSE(is_loaded(greeters));
  REQUIRE(available_plugins("no_such_kind").empty());
  REQUIRE(plugin_search_path().front() == kPlugins);
}

TEST_CASE("create_plugin builds a working object that reads its config section", "[unit]") {
  use_plugin_path();
  Config config = Config::from_string("[greeter]\nplugin = \"hello\"\ngreeting = \"hi\"\n", "greet.toml");
  ConfigSection section = config.section("greeter");
  PluginPtr<Greeter> g = create_plugin<Greeter>("greeter", section.get_string("plugin"), section);
  REQUIRE(g);
  REQUIRE(g->greet("world") == "hi, world");
  REQUIRE_NOTHROW(config.check_no_unknown_keys());  // the plugin's read declared 'greeting'

  // Objects can move into shared ownership and outlive the PluginPtr that made them.
  std::shared_ptr<Greeter> shared = std::move(g);
  PluginPtr<Greeter> second = create_plugin<Greeter>("greeter", "hello", Config().section("greeter"));
  REQUIRE(second->greet("again") == "hello, again");
  second.reset();
  REQUIRE(shared->greet("still") == "hi, still");
}

TEST_CASE("a missing plugin lists what was found and where", "[unit]") {
  use_plugin_path();
  const std::string msg =
      message_of<PluginError>([] { create_plugin<Greeter>("greeter", "helo", Config().section("greeter")); });
  REQUIRE_THAT(msg, Contains("no plugin 'helo' of kind 'greeter'"));
  REQUIRE_THAT(msg, Contains("(did you mean 'hello'?)"));
  REQUIRE_THAT(msg, Contains("available greeter plugins: "));
  REQUIRE_THAT(msg, Contains("hello (libtessera_test_greeters.so)"));
  REQUIRE_THAT(msg, Contains("old (libtessera_test_oldabi.so)"));
  REQUIRE_THAT(msg, Contains("searched: " + kPlugins + ", "));
  REQUIRE_THAT(msg, Contains("set TESSERA_PLUGIN_PATH"));

  const std::string none =
      message_of<PluginError>([] { create_plugin<Greeter>("teapot", "earl_grey", Config().section("teapot")); });
  REQUIRE_THAT(none, Contains("no plugin 'earl_grey' of kind 'teapot'; no teapot plugins were found"));
}

TEST_CASE("exceptions from a factory arrive as core copies of the same category, tagged", "[unit]") {
  use_plugin_path();
  const ConfigSection s = Config().section("greeter");
  std::string msg = message_of<ConfigError>([&] { create_plugin<Greeter>("greeter", "strict", s); });
  REQUIRE(msg == "greeter plugin 'strict': greeter.greeting: strict greeters need a greeting");
  msg = message_of<FormatError>([&] { create_plugin<Greeter>("greeter", "corrupt", s); });
  REQUIRE(msg == "greeter plugin 'corrupt': greetings.bin is truncated");
  msg = message_of<PluginError>([&] { create_plugin<Greeter>("greeter", "crash", s); });
  REQUIRE(msg == "greeter plugin 'crash': out of greetings");
  msg = message_of<ShapeError>([&] { create_plugin<Greeter>("greeter", "misshapen", s); });
  REQUIRE(msg == "greeter plugin 'misshapen': greeting table is [0, 3]");
  msg = message_of<CommError>([&] { create_plugin<Greeter>("greeter", "lonely", s); });
  REQUIRE(msg == "greeter plugin 'lonely': no rank 1 to greet");
  // A plain tessera::Error stays one: not promoted to any category, nor demoted to PluginError.
  try {
    create_plugin<Greeter>("greeter", "vague", s);
    FAIL("no exception");
  } catch (const PluginError&) {
    FAIL("a plain Error became a PluginError");
  } catch (const Error& e) {
    REQUIRE(typeid(e) == typeid(Error));
    REQUIRE(std::string(e.what()) == "greeter plugin 'vague': something went wrong");
  }
}

TEST_CASE("a plugin built against another ABI is refused", "[unit]") {
  use_plugin_path();
  const std::string msg =
      message_of<PluginError>([] { create_plugin<Greeter>("greeter", "old", Config().section("greeter")); });
  REQUIRE_THAT(msg, Contains("greeter plugin 'old'"));
  REQUIRE_THAT(msg, Contains("libtessera_test_oldabi.so"));
  REQUIRE_THAT(msg, Contains("built against Tessera plugin ABI 999"));
  REQUIRE_THAT(msg, Contains("expects ABI " + std::to_string(TESSERA_PLUGIN_ABI_VERSION)));
}

TEST_CASE("a library that cannot be loaded is reported with dlerror's text", "[unit]") {
  use_plugin_path();
  const std::string msg =
      message_of<PluginError>([] { create_plugin<Greeter>("greeter", "broken", Config().section("greeter")); });
  REQUIRE_THAT(msg, Contains("cannot load plugin library " + kPlugins + "/libtessera_test_broken.so"));
  REQUIRE_THAT(msg, Contains("undefined symbol: tessera_test_missing_function"));
}

TEST_CASE("stripped libraries are listed; earlier folders on the path win", "[unit]") {
  use_plugin_path(std::string(TEST_STRIPPED_DIR) + ":" + kPlugins);
  const auto plugins = available_plugins("greeter");
  const auto hello = std::find_if(plugins.begin(), plugins.end(), [](auto& p) { return p.name == "hello"; });
  REQUIRE(hello != plugins.end());
  REQUIRE(hello->library.filename() == "libtessera_test_stripped.so");
  REQUIRE(std::count_if(plugins.begin(), plugins.end(), [](auto& p) { return p.name == "hello"; }) == 1);
  PluginPtr<Greeter> g = create_plugin<Greeter>("greeter", "hello", Config().section("greeter"));
  REQUIRE(g->greet("stripped") == "hello, stripped");
  use_plugin_path();
}

TEST_CASE("`tessera plugins` prints the search path and the plugins found", "[unit]") {
  const std::string cmd =
      "TESSERA_PLUGIN_PATH='" + kPlugins + "' '" TESSERA_BINARY_DIR "/bin/tessera' plugins --kind greeter 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = ::pclose(pipe);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE_THAT(out, Contains(kPlugins));
  REQUIRE_THAT(out, Contains("hello"));
  REQUIRE_THAT(out, Contains("libtessera_test_greeters.so"));
  REQUIRE_THAT(out, Contains("greeter"));
}
