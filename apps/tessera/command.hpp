// Subcommands of the `tessera` CLI register themselves here, one file each (cmd_<name>.cpp), so
// adding a subcommand touches no shared file.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tessera::app {

struct Command {
  std::string name;
  // Adds the subcommand's options to `sub`; returns the function that runs it (exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
  std::string description;
};

std::vector<Command>& commands();

struct RegisterCommand {
  RegisterCommand(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace tessera::app
