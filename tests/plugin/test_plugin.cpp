// Plugin registry: listing without loading, creating by name, miss messages, ABI and load errors,
// exceptions from factories, malformed libraries on the path, and the `tessera plugins` command.
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <typeinfo>

#include <catch2/catch.hpp>

#include "elf_symbols.hpp"
#include "expect_error.hpp"
#include "greeter.hpp"
#include "test_util.hpp"
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

TEST_CASE("the search path is TESSERA_PLUGIN_PATH, then the folder beside libtessera_core.so", "[unit]") {
  use_plugin_path(std::string(TEST_STRIPPED_DIR) + ":" + kPlugins);
  // In the build tree core is build/lib/libtessera_core.so, so its plugins are build/lib/tessera;
  // no configure-time folder (the build tree, an install prefix) is searched besides.
  const std::vector<std::filesystem::path> expected{
      TEST_STRIPPED_DIR, kPlugins, std::filesystem::canonical(TESSERA_BINARY_DIR "/lib/tessera")};
  REQUIRE(plugin_search_path() == expected);
  use_plugin_path();
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
  ::setenv("TESSERA_PLUGIN_PATH", kPlugins.c_str(), 1);  // inherited by the child
  int status = 0;
  const std::string out =
      tessera::test::run_command({TESSERA_BINARY_DIR "/bin/tessera", "plugins", "--kind", "greeter"}, &status, true);
  INFO(out);
  REQUIRE(status == 0);
  REQUIRE_THAT(out, Contains(kPlugins));
  REQUIRE_THAT(out, Contains("hello"));
  REQUIRE_THAT(out, Contains("libtessera_test_greeters.so"));
  REQUIRE_THAT(out, Contains("greeter"));
}

namespace {

using Bytes = std::vector<unsigned char>;
const std::string kGreeters = kPlugins + "/libtessera_test_greeters.so";

template <typename T>
T get(const Bytes& b, std::size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}
template <typename T>
void put(Bytes& b, std::size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

// Offset of section `i`'s header inside a (valid) ELF64 file.
std::size_t section_header(const Bytes& b, std::size_t i) {
  return get<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff)) + i * sizeof(Elf64_Shdr);
}
std::size_t dynsym_index(const Bytes& b) {
  const auto count = get<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum));
  for (std::size_t i = 1; i < count; ++i)
    if (get<Elf64_Word>(b, section_header(b, i) + offsetof(Elf64_Shdr, sh_type)) == SHT_DYNSYM) return i;
  FAIL("no .dynsym in the test plugin");
  return 0;
}

// Copies of the greeters plugin, each broken in one way, with what the reader must say about it.
struct Corruption {
  std::string file;    // libtessera_bad_<what>.so
  std::string reason;  // part of the reader's error
  Bytes bytes;
};
std::vector<Corruption> corruptions() {
  const Bytes good = tessera::test::read_bytes(kGreeters);
  std::vector<Corruption> out;
  const auto add = [&](std::string what, std::string reason, auto&& edit) {
    Bytes b = good;
    edit(b);
    out.push_back({"libtessera_bad_" + what + ".so", std::move(reason), std::move(b)});
  };
  // The one-byte change that crashed Boost's reader (heap-buffer-overflow, then SIGSEGV).
  add("shstrndx", "e_shstrndx is 0 (SHN_UNDEF)",
      [](Bytes& b) { put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shstrndx), 0); });
  add("shoff", "the section header table", [&](Bytes& b) {
    put<Elf64_Off>(b, offsetof(Elf64_Ehdr, e_shoff), good.size() + 4096);
  });
  add("truncated", "the section header table", [](Bytes& b) { b.resize(b.size() / 2); });
  add("tiny", "too short for an ELF header", [](Bytes& b) { b.resize(10); });
  // offset + size wraps around to a small number: a check written as `offset + size <= file size` passes.
  add("dynsym_overflow", "the dynamic symbol table", [](Bytes& b) {
    const std::size_t h = section_header(b, dynsym_index(b));
    put<Elf64_Xword>(b, h + offsetof(Elf64_Shdr, sh_offset), 0x40);
    put<Elf64_Xword>(b, h + offsetof(Elf64_Shdr, sh_size), 0xfffffffffffffff0ull);  // a multiple of 24
  });
  add("shstrtab_overflow", "the section name table", [](Bytes& b) {
    const std::size_t h = section_header(b, get<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shstrndx)));
    put<Elf64_Xword>(b, h + offsetof(Elf64_Shdr, sh_offset), 0xfffffffffffffff8ull);
    put<Elf64_Xword>(b, h + offsetof(Elf64_Shdr, sh_size), 16);
  });
  // Extended numbering: e_shnum = 0 puts the count in section 0's sh_size; count × 64 wraps to 0.
  add("shnum_overflow", "the section header table", [](Bytes& b) {
    put<Elf64_Half>(b, offsetof(Elf64_Ehdr, e_shnum), 0);
    put<Elf64_Xword>(b, section_header(b, 0) + offsetof(Elf64_Shdr, sh_size), 1ull << 58);
  });
  add("dynstr_index", "the dynamic string table", [](Bytes& b) {
    put<Elf64_Word>(b, section_header(b, dynsym_index(b)) + offsetof(Elf64_Shdr, sh_link), 0xffff);
  });
  add("section_name", "the name of section", [](Bytes& b) {
    put<Elf64_Word>(b, section_header(b, 1) + offsetof(Elf64_Shdr, sh_name), 0xfffffff0u);
  });
  add("not_elf", "not an ELF file", [](Bytes& b) { b[1] = 'X'; });
  return out;
}

// Runs f with stderr (fd 2) sent to a file, and returns what was written there.
template <typename F>
std::string stderr_of(F&& f) {
  tessera::test::TempDir dir;
  const std::string path = dir / "stderr.txt";
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE((saved >= 0 && fd >= 0));
  ::dup2(fd, 2);
  ::close(fd);
  const auto restore = [&] {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
  };
  try {
    f();
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return tessera::test::read_text(path);
}

// Runs a program with these arguments (no shell), TESSERA_PLUGIN_PATH set to `plugin_path`, stdout
// and stderr into one file; returns the wait status and the output.
std::pair<int, std::string> run_program(const std::vector<std::string>& args, const std::string& plugin_path) {
  tessera::test::TempDir dir;
  const std::string out = dir / "out.txt";
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_text{"TESSERA_PLUGIN_PATH=" + plugin_path};
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "TESSERA_PLUGIN_PATH=", 20) != 0) env_text.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {status, tessera::test::read_text(out)};
}

}  // namespace

TEST_CASE("the ELF reader lists TESSERA_PLUGIN symbols from .dynsym, stripped or not", "[unit]") {
  const std::vector<std::string> expected{"tessera_greeter__hello",  "tessera_greeter__strict",
                                          "tessera_greeter__corrupt", "tessera_greeter__crash",
                                          "tessera_greeter__misshapen", "tessera_greeter__lonely",
                                          "tessera_greeter__vague"};
  for (const std::string& library : {kGreeters, std::string(TEST_STRIPPED_DIR) + "/libtessera_test_stripped.so"}) {
    INFO(library);
    const detail::ElfSymbols read = detail::elf_dynamic_symbols_in_section(library, "tessera");
    REQUIRE(read.error == "");
    REQUIRE_THAT(read.symbols, Catch::UnorderedEquals(expected));
    // The ABI symbols are in their own section, and nothing is in a section that does not exist.
    const detail::ElfSymbols abi = detail::elf_dynamic_symbols_in_section(library, "tessabi");
    REQUIRE(abi.ok());
    REQUIRE(abi.symbols.size() == expected.size());
    const detail::ElfSymbols none = detail::elf_dynamic_symbols_in_section(library, "nosuch");
    REQUIRE(none.ok());
    REQUIRE(none.symbols.empty());
  }
}

TEST_CASE("the ELF reader names what is wrong with a malformed file", "[unit]") {
  tessera::test::TempDir dir;
  for (const Corruption& c : corruptions()) {
    INFO(c.file);
    tessera::test::write_bytes(dir / c.file, c.bytes);
    const detail::ElfSymbols read = detail::elf_dynamic_symbols_in_section(dir / c.file, "tessera");
    REQUIRE_FALSE(read.ok());
    REQUIRE(read.symbols.empty());
    REQUIRE_THAT(read.error, Contains(c.reason));
  }
  const detail::ElfSymbols missing = detail::elf_dynamic_symbols_in_section(dir / "absent.so", "tessera");
  REQUIRE_THAT(missing.error, Contains("cannot open it"));
  const detail::ElfSymbols folder = detail::elf_dynamic_symbols_in_section(dir.path, "tessera");
  REQUIRE_THAT(folder.error, Contains("not a regular file"));
}

TEST_CASE("malformed libraries on the path are skipped with a warning; the others still work", "[unit]") {
  tessera::test::TempDir bad;
  const std::vector<Corruption> all = corruptions();
  for (const Corruption& c : all) tessera::test::write_bytes(bad / c.file, c.bytes);
  use_plugin_path(bad.path.string() + ":" + kPlugins);

  std::vector<PluginInfo> plugins;
  const std::string warnings = stderr_of([&] { plugins = available_plugins("greeter"); });
  INFO(warnings);
  using Catch::VectorContains;
  REQUIRE_THAT(names(plugins), VectorContains(std::string("greeter/hello")) &&
                                   VectorContains(std::string("greeter/old")));
  for (const auto& p : plugins) REQUIRE(p.library.parent_path() == kPlugins);
  for (const Corruption& c : all)
    REQUIRE_THAT(warnings, Contains("plugin registry: skipping " + (bad / c.file) + ": ") &&
                               Contains(c.reason));
  PluginPtr<Greeter> g = create_plugin<Greeter>("greeter", "hello", Config().section("greeter"));
  REQUIRE(g->greet("still") == "hello, still");
  use_plugin_path();
}

TEST_CASE("`tessera plugins` lists the good plugins when a malformed one is on the path", "[unit]") {
  tessera::test::TempDir bad;
  for (const Corruption& c : corruptions()) tessera::test::write_bytes(bad / c.file, c.bytes);
  const auto [status, out] = run_program({TESSERA_BINARY_DIR "/bin/tessera", "plugins", "--kind", "greeter"},
                                         bad.path.string() + ":" + kPlugins);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE_THAT(out, Contains("skipping " + (bad / "libtessera_bad_shstrndx.so") + ": the section name table index"));
  REQUIRE_THAT(out, Contains("libtessera_test_greeters.so"));
  REQUIRE_THAT(out, Contains("hello"));
}
