// Plugin registry: shared libraries (libtessera_<name>.so) loaded at run time by Boost.DLL and
// asked for a factory by kind and name, e.g. ("model", "gpt") from `[model] plugin = "gpt"`.
//
// Search path, in order: $TESSERA_PLUGIN_PATH (colon-separated), then the folder `tessera` beside
// the running libtessera_core.so (build/lib/tessera in a build tree, <prefix>/lib/tessera when
// installed); the first library that exports (kind, name) wins. Each entry is checked for the ABI
// version it was built against. A miss lists every (kind, name) that was found, read from the
// libraries' "tessera" section without loading them; a file that is not a valid ELF shared object
// is skipped with a warning naming it and what is wrong. Loaded libraries stay cached;
// objects a plugin creates also keep their library loaded (PluginPtr's deleter holds the handle),
// and exceptions thrown by a factory are rethrown as copies made in core, tagged with the plugin's
// kind and name, with the same category (ConfigError, FormatError, ShapeError, CommError,
// PluginError; another tessera::Error stays an Error; any other exception becomes a PluginError).
// Exceptions from the created object's methods are not intercepted.
//
// A plugin author writes:
//   std::unique_ptr<Greeter> make_hello(const ConfigSection& s) { ... }
//   TESSERA_PLUGIN(greeter, hello, make_hello)
// and a consumer:
//   PluginPtr<Greeter> g = create_plugin<Greeter>("greeter", "hello", config.section("greeter"));
// where Greeter declares `using FactorySignature = std::unique_ptr<Greeter>(const ConfigSection&)`;
// the factory's type must be exactly that (it is called through that type).
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/dll/alias.hpp>

#include "tessera/error.hpp"

// Bumped whenever an interface header in core/include/tessera changes incompatibly.
// 23: Module::backward_with_input; keep_input in the linears', MLP's and attention's options;
// NormSpec::keeps_input, MlpSpec::takes_input_back.
// 24: context parallelism: StepContext::context_parallel, ParallelSizes::cp, ProcessGroups::cp,
// AttentionMask::query_position, ModelChunkCost's cp collectives.
#define TESSERA_PLUGIN_ABI_VERSION 24

namespace tessera {

struct PluginInfo {
  std::string kind;
  std::string name;
  std::filesystem::path library;
};

// Keeps the library loaded while an object it made is alive.
struct PluginDeleter {
  std::shared_ptr<void> library;       // type-erased boost::dll::shared_library
  std::function<void(void*)> destroy;  // calls the object's virtual destructor
  std::string kind, name;              // of the plugin that made the object
  void operator()(void* p) const {
    if (p) destroy(p);
  }
};
template <typename T>
struct TypedPluginDeleter : PluginDeleter {
  void operator()(T* p) const { PluginDeleter::operator()(p); }
};
template <typename T>
using PluginPtr = std::unique_ptr<T, TypedPluginDeleter<T>>;
// "<kind> plugin '<name>'" of the plugin that made the object, for messages.
template <typename T>
std::string plugin_label(const PluginPtr<T>& p) {
  return p.get_deleter().kind + " plugin '" + p.get_deleter().name + "'";
}

namespace detail {
struct FactoryHandle {
  std::shared_ptr<void> library;  // the loaded library, shared with the registry's cache
  void* factory = nullptr;        // the exported factory function
};
// Finds the library that exports (kind, name) on the search path, loads it (once) and checks its
// ABI version. Throws PluginError on a miss, a load failure or an ABI mismatch.
FactoryHandle find_factory(const std::string& kind, const std::string& name);
// Call inside a catch block: throws a core-made copy of the current exception, tagged with the plugin.
[[noreturn]] void rethrow_from_plugin(const std::string& kind, const std::string& name);
}  // namespace detail

std::vector<std::filesystem::path> plugin_search_path();
// Every plugin found on the search path (optionally only one kind), sorted by kind and name, without
// loading any. Where two libraries export the same (kind, name), only the first on the path counts.
std::vector<PluginInfo> available_plugins(const std::string& kind = "");

// Creates an object of interface T through the factory registered as (kind, name). T declares
// `using FactorySignature = std::unique_ptr<T>(Args...)`.
template <typename T, typename... Args>
PluginPtr<T> create_plugin(const std::string& kind, const std::string& name, Args&&... args) {
  static_assert(std::has_virtual_destructor_v<T>, "plugin interfaces need a virtual destructor");
  using Fn = typename T::FactorySignature;
  detail::FactoryHandle handle = detail::find_factory(kind, name);
  auto* factory = reinterpret_cast<Fn*>(handle.factory);
  std::unique_ptr<T> made;
  try {
    made = factory(std::forward<Args>(args)...);
  } catch (...) {
    detail::rethrow_from_plugin(kind, name);
  }
  if (!made) throw PluginError(kind + " plugin '" + name + "': its factory returned no object");
  TypedPluginDeleter<T> deleter;
  deleter.library = std::move(handle.library);
  deleter.destroy = [](void* p) { delete static_cast<T*>(p); };
  deleter.kind = kind;
  deleter.name = name;
  return PluginPtr<T>(made.release(), std::move(deleter));
}

// Runs f(object) and rethrows what it throws as create_plugin does for a factory (a core-made copy,
// tagged "<kind> plugin '<name>': "), for the calls that do a plugin's setup work (DataSource::open).
template <typename T, typename F>
decltype(auto) call_plugin(const PluginPtr<T>& p, F&& f) {
  try {
    return f(*p);
  } catch (...) {
    detail::rethrow_from_plugin(p.get_deleter().kind, p.get_deleter().name);
  }
}

}  // namespace tessera

// Exports `factory` under kind and name (plain identifiers): TESSERA_PLUGIN(model, gpt, make_gpt).
// Use it at namespace scope, once per (kind, name). It exports two symbols:
//   tessera_<kind>__<name>      in section "tessera": the factory (listed without loading)
//   tessera_abi__<kind>__<name> in section "tessabi": returns the ABI version compiled against
// (Section names must stay within 8 characters for Boost.DLL.)
#define TESSERA_PLUGIN(kind, name, factory)                                 \
  BOOST_DLL_ALIAS_SECTIONED(factory, tessera_##kind##__##name, tessera)     \
  namespace {                                                               \
  int tessera_abi_##kind##__##name() { return TESSERA_PLUGIN_ABI_VERSION; } \
  }                                                                         \
  BOOST_DLL_ALIAS_SECTIONED(tessera_abi_##kind##__##name, tessera_abi__##kind##__##name, tessabi)
