// Plugin registry: the search path, listing plugins from their libraries' "tessera" section without
// loading them, loading (cached) with the ABI check, and re-throwing factory exceptions from core.
#include "tessera/plugin.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "closest_match.hpp"
#include "elf_symbols.hpp"
#include "tessera/logging.hpp"
#include "tessera/parallel/communicator.hpp"
#include "tessera/quote.hpp"

namespace tessera {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFactoryPrefix = "tessera_";
constexpr std::string_view kSeparator = "__";

std::string factory_symbol(const std::string& kind, const std::string& name) {
  return std::string(kFactoryPrefix) + kind + std::string(kSeparator) + name;
}
std::string abi_symbol(const std::string& kind, const std::string& name) {
  return "tessera_abi__" + kind + std::string(kSeparator) + name;
}

bool is_plugin_library(const fs::path& p) {
  const std::string f = p.filename().string();
  return f.size() > 14 && f.rfind("libtessera_", 0) == 0 && f.substr(f.size() - 3) == ".so";
}

// The symbols TESSERA_PLUGIN put in the "tessera" section, read from the file (not loaded) by our
// bounds-checked reader. A malformed file is skipped with a warning (once per file and reason, as
// the registry is asked for each plugin a run creates), so the other plugins still work.
std::vector<std::string> exported_entries(const fs::path& library) {
  detail::ElfSymbols read = detail::elf_dynamic_symbols_in_section(library, "tessera");
  if (read.ok()) return std::move(read.symbols);
  static std::mutex mutex;
  static std::set<std::pair<fs::path, std::string>> warned;
  std::lock_guard lock(mutex);
  if (warned.insert({library, read.error}).second)
    log_warn("plugin registry: skipping {}: {}", library.string(), read.error);
  return {};
}

class LibraryCache {
 public:
  std::shared_ptr<boost::dll::shared_library> load(const fs::path& path) {
    std::lock_guard lock(mutex_);
    auto& slot = loaded_[path];
    if (slot) return slot;
    auto lib = std::make_shared<boost::dll::shared_library>();
    boost::dll::fs::error_code ec;
    // rtld_now: a missing symbol fails here with dlerror's text, not later as a fatal lazy-binding error.
    lib->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
    if (ec || !lib->is_loaded()) {
      const char* why = dlerror();
      loaded_.erase(path);
      throw PluginError(fmt::format("cannot load plugin library {}: {}", path.string(),
                                    why ? std::string(why) : ec.message()));
    }
    slot = std::move(lib);
    return slot;
  }

 private:
  std::mutex mutex_;
  std::map<fs::path, std::shared_ptr<boost::dll::shared_library>> loaded_;
};

LibraryCache& library_cache() {
  static LibraryCache cache;
  return cache;
}

std::string miss_message(const std::string& kind, const std::string& name, const std::vector<PluginInfo>& found) {
  std::vector<std::string> names, listed;
  for (const auto& p : found) {
    names.push_back(p.name);
    listed.push_back(fmt::format("{} ({})", p.name, p.library.filename().string()));
  }
  std::vector<std::string> dirs;
  for (const auto& d : plugin_search_path()) dirs.push_back(d.string());
  return fmt::format("no plugin '{}' of kind '{}'{}; {}; searched: {} (set TESSERA_PLUGIN_PATH to add folders)",
                     plain_or_quoted(name), kind, detail::did_you_mean(name, names),
                     found.empty() ? fmt::format("no {} plugins were found", kind)
                                   : fmt::format("available {} plugins: {}", kind, fmt::join(listed, ", ")),
                     fmt::join(dirs, ", "));
}

// <folder of the running libtessera_core.so>/tessera: build/lib/tessera in a build tree,
// <prefix>/lib/tessera when installed, wherever the prefix was moved. No configure-time path is
// searched, so an installed copy never picks up plugins from the build tree it came from.
std::optional<fs::path> plugin_folder_beside_core() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<const void*>(&plugin_search_path), &info) == 0 || info.dli_fname == nullptr)
    return std::nullopt;
  std::error_code ec;
  const fs::path core = fs::absolute(info.dli_fname, ec);
  if (ec) return std::nullopt;
  const fs::path resolved = fs::weakly_canonical(core, ec);  // "bin/../lib/…" reads better resolved
  return (ec ? core : resolved).parent_path() / "tessera";
}

}  // namespace

std::vector<fs::path> plugin_search_path() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("TESSERA_PLUGIN_PATH")) {
    std::string_view rest(env);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const std::string_view part = rest.substr(0, colon);
      if (!part.empty()) dirs.emplace_back(part);
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  if (auto beside_core = plugin_folder_beside_core()) dirs.push_back(std::move(*beside_core));
  // The same folder twice (tests set TESSERA_PLUGIN_PATH to the build folder) is searched once.
  std::vector<fs::path> unique;
  std::set<fs::path> seen;
  for (const auto& d : dirs) {
    std::error_code ec;
    fs::path key = fs::weakly_canonical(d, ec);
    if (ec) key = d.lexically_normal();
    if (seen.insert(key).second) unique.push_back(d);
  }
  return unique;
}

std::vector<PluginInfo> available_plugins(const std::string& kind) {
  std::vector<PluginInfo> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const fs::path& dir : plugin_search_path()) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> libraries;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (is_plugin_library(entry.path()) && entry.is_regular_file(ec)) libraries.push_back(entry.path());
    std::sort(libraries.begin(), libraries.end());
    for (const fs::path& library : libraries) {
      for (const std::string& symbol : exported_entries(library)) {
        // tessera_<kind>__<name>; kinds never contain "__", names may contain "_".
        if (symbol.rfind(kFactoryPrefix, 0) != 0) continue;
        const std::string rest = symbol.substr(kFactoryPrefix.size());
        const auto sep = rest.find(kSeparator);
        if (sep == std::string::npos || sep == 0 || sep + kSeparator.size() == rest.size()) continue;
        PluginInfo info{rest.substr(0, sep), rest.substr(sep + kSeparator.size()), library};
        if (!kind.empty() && info.kind != kind) continue;
        if (seen.insert({info.kind, info.name}).second) out.push_back(std::move(info));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const PluginInfo& a, const PluginInfo& b) {
    return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
  });
  return out;
}

namespace detail {

FactoryHandle find_factory(const std::string& kind, const std::string& name) {
  const std::vector<PluginInfo> found = available_plugins(kind);
  const auto it = std::find_if(found.begin(), found.end(), [&](const PluginInfo& p) { return p.name == name; });
  if (it == found.end()) throw PluginError(miss_message(kind, name, found));

  auto lib = library_cache().load(it->library);
  const std::string abi = abi_symbol(kind, name);
  if (!lib->has(abi))
    throw PluginError(fmt::format("{} plugin '{}' in {} exports no ABI version ({}); rebuild it with "
                                  "TESSERA_PLUGIN from this Tessera's plugin.hpp (core expects ABI {})",
                                  kind, name, it->library.string(), abi, TESSERA_PLUGIN_ABI_VERSION));
  const int version = lib->get_alias<int()>(abi)();
  if (version != TESSERA_PLUGIN_ABI_VERSION)
    throw PluginError(fmt::format("{} plugin '{}' in {} was built against Tessera plugin ABI {}, but this core "
                                  "expects ABI {}; rebuild the plugin against this Tessera",
                                  kind, name, it->library.string(), version, TESSERA_PLUGIN_ABI_VERSION));
  // The alias variable holds the factory's address (BOOST_DLL_ALIAS stores it as const void*).
  void* factory = const_cast<void*>(lib->get<const void*>(factory_symbol(kind, name)));
  return FactoryHandle{std::shared_ptr<void>(lib, lib.get()), factory};
}

void rethrow_from_plugin(const std::string& kind, const std::string& name) {
  // The copy is made here, in core, so that the exception in flight never depends on code or
  // type information inside the plugin library.
  const std::string label = fmt::format("{} plugin '{}'", kind, name);
  // A message that already names the plugin ("data plugin 'x': …", "data plugin 'x' needs …") keeps its own.
  const auto tagged = [&](const char* what) {
    const std::string m = what;
    return m.starts_with(label) ? m : label + ": " + m;
  };
  try {
    throw;
  } catch (const ConfigError& e) {
    throw ConfigError(tagged(e.what()));
  } catch (const FormatError& e) {
    throw FormatError(tagged(e.what()));
  } catch (const ShapeError& e) {
    throw ShapeError(tagged(e.what()));
  } catch (const CommError& e) {
    throw CommError(tagged(e.what()));
  } catch (const PluginError& e) {
    throw PluginError(tagged(e.what()));
  } catch (const Error& e) {  // a category without its own case above stays a tessera::Error
    throw Error(tagged(e.what()));
  } catch (const std::exception& e) {
    throw PluginError(tagged(e.what()));
  } catch (...) {
    throw PluginError(label + ": its factory threw an exception that is not a std::exception");
  }
}

}  // namespace detail
}  // namespace tessera
