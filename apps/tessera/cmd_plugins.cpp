// `tessera plugins`: where the registry looks and what it finds there (libraries are not loaded).
#include <algorithm>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "command.hpp"
#include "tessera/plugin.hpp"

namespace tessera::app {
namespace {

struct PluginsOptions {
  std::string kind;
};

std::function<int()> setup_plugins(CLI::App& sub) {
  auto opts = std::make_shared<PluginsOptions>();
  sub.add_option("--kind", opts->kind, "Only plugins of this kind (model, optimizer, schedule, data, ...)");
  return [opts] {
    fmt::print("Plugin search path (in order; set TESSERA_PLUGIN_PATH to add folders):\n");
    for (const auto& dir : plugin_search_path()) {
      std::error_code ec;
      fmt::print("  {}{}\n", dir.string(), std::filesystem::is_directory(dir, ec) ? "" : "  (missing)");
    }
    const auto plugins = available_plugins(opts->kind);
    std::size_t kind_width = 4, name_width = 4;
    for (const auto& p : plugins) {
      kind_width = std::max(kind_width, p.kind.size());
      name_width = std::max(name_width, p.name.size());
    }
    if (plugins.empty()) {
      fmt::print("\nNo {}plugins found.\n", opts->kind.empty() ? "" : opts->kind + " ");
      return 0;
    }
    fmt::print("\n{} plugin{} found:\n", plugins.size(), plugins.size() == 1 ? "" : "s");
    fmt::print("  {:<{}}  {:<{}}  {}\n", "kind", kind_width, "name", name_width, "library");
    for (const auto& p : plugins)
      fmt::print("  {:<{}}  {:<{}}  {}\n", p.kind, kind_width, p.name, name_width, p.library.string());
    return 0;
  };
}

const RegisterCommand registered{{"plugins", setup_plugins, "List the plugin search path and the plugins found on it"}};

}  // namespace
}  // namespace tessera::app
