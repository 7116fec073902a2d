// tessera: train · preprocess · generate · bench — one binary, one subcommand per file.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

namespace {
// OpenMP threads that spin after a parallel region steal the core from OpenBLAS's threads and halve
// GEMM throughput (measured: one GPT-2 layer 267 ms → 132 ms). libgomp reads OMP_WAIT_POLICY only
// at start-up, so when the user has not chosen a policy we set PASSIVE and start again.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}
}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  ensure_passive_openmp(argv);
  CLI::App app{"tessera: train transformer language models (GPT today) with plugins chosen by config"};
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
