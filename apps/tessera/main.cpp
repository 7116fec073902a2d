// tessera: train · preprocess · generate · bench — one binary, one subcommand per file.
#include <algorithm>
#include <cstdio>
#include <map>

#include <CLI/CLI.hpp>

#include "command.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"

namespace tessera::app {
std::vector<Command>& commands() {
  static std::vector<Command> c;
  return c;
}
}  // namespace tessera::app

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"tessera: train transformer language models (GPT, BERT, T5) with plugins chosen by config"};
  app.require_subcommand(1);
  app.set_version_flag("--version", TESSERA_VERSION_STRING);
  auto& cmds = app::commands();
  std::sort(cmds.begin(), cmds.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<CLI::App*, std::function<int()>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    runners[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const Error& e) {
    log_error("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    log_error("unexpected error: {}", e.what());
    return 1;
  }
  return 0;
}
