// Plugin registry: shared libraries (libtessera_<name>.so) loaded at run time by Boost.DLL and
// asked for a factory by kind and name, e.g. ("model", "gpt") from `[model] plugin = "gpt"`.
//
// Search path, in order: $TESSERA_PLUGIN_PATH (colon-separated), the build's plugin folder, the
// install prefix's lib/tessera. Each library is checked for the ABI version it was built against.
// A miss lists every (kind, name) that was found, read from the libraries' "tessera" section
// without loading them. Objects a plugin creates keep its library loaded (PluginPtr's deleter holds
// the handle), and exceptions thrown by a factory are rethrown as copies made in core, tagged with
// the plugin's name.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/dll/alias.hpp>

#include "tessera/error.hpp"

// Bumped whenever an interface header in core/include/tessera changes incompatibly.
#define TESSERA_PLUGIN_ABI_VERSION 1

namespace tessera {

struct PluginInfo {
  std::string kind;
  std::string name;
  std::filesystem::path library;
};

// Keeps the library loaded while an object it made is alive.
struct PluginDeleter {
  std::shared_ptr<void> library;      // type-erased boost::dll::shared_library
  std::function<void(void*)> destroy;  // calls the object's virtual destructor
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

namespace detail {
// Loads the library that exports tessera_<kind>__<name>; returns the handle and the symbol's address.
std::pair<std::shared_ptr<void>, void*> find_factory(const std::string& kind, const std::string& name);
[[noreturn]] void rethrow_from_plugin(const std::string& kind, const std::string& name);
}  // namespace detail

std::vector<std::filesystem::path> plugin_search_path();
// Every plugin found on the search path (optionally only one kind), without loading any.
std::vector<PluginInfo> available_plugins(const std::string& kind = "");

// Creates an object of interface T through the factory registered as (kind, name). T declares
// `using FactorySignature = std::unique_ptr<T>(Args...)`.
template <typename T, typename... Args>
PluginPtr<T> create_plugin(const std::string& kind, const std::string& name, Args&&... args) {
  auto [library, symbol] = detail::find_factory(kind, name);
  using Fn = typename T::FactorySignature;
  auto* factory = *reinterpret_cast<Fn**>(symbol);
  std::unique_ptr<T> made;
  try {
    made = factory(std::forward<Args>(args)...);
  } catch (...) {
    detail::rethrow_from_plugin(kind, name);
  }
  TypedPluginDeleter<T> deleter;
  deleter.library = library;
  deleter.destroy = [](void* p) { delete static_cast<T*>(p); };
  return PluginPtr<T>(made.release(), deleter);
}

}  // namespace tessera

// Exports `factory` under kind and name (plain identifiers): TESSERA_PLUGIN(model, gpt, make_gpt).
// Also exports the ABI version the plugin was compiled against, once per plugin entry.
#define TESSERA_PLUGIN(kind, name, factory)                                              \
  BOOST_DLL_ALIAS_SECTIONED(factory, tessera_##kind##__##name, tessera)                  \
  namespace {                                                                            \
  int tessera_abi_##kind##__##name() { return TESSERA_PLUGIN_ABI_VERSION; }              \
  }                                                                                      \
  BOOST_DLL_ALIAS_SECTIONED(tessera_abi_##kind##__##name, tessera_abi__##kind##__##name, tessabi)
