// Subcommands of the `tessera` CLI register themselves here, one file each (cmd_<name>.cpp), so
// adding a subcommand touches no shared file.
#pragma once
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tessera/parallel/abort.hpp"
#include "tessera/parallel/mpi_runtime.hpp"

namespace tessera::app {

struct Command {
  std::string name;
  // Adds the subcommand's options to `sub`; returns the function that runs it (exit code).
  std::function<std::function<int()>(CLI::App& sub)> setup;
  std::string description;
};

std::vector<Command>& commands();

// A numeric option check with a readable message: CLI11's PositiveNumber says "not in range
// 2.22507e-308 to 1.79769e+308". `lo`/`hi` are the bounds, `open_lo` excludes `lo` itself.
inline CLI::Validator in_range(double lo, double hi = std::numeric_limits<double>::infinity(), bool open_lo = false) {
  std::string what = hi == std::numeric_limits<double>::infinity()
                         ? (open_lo ? "> " : ">= ") + CLI::detail::to_string(lo)
                         : (open_lo ? "in (" : "in [") + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(in, v) || !(v >= lo && v <= hi) || (open_lo && v == lo))  // NaN fails
          return "must be " + what + ", got " + in;
        return {};
      },
      what);
}

// Runs a command's body on this rank. Under a launcher a rank that fails ends the whole job (never a
// hang: the others would wait for it in a collective); alone, errors reach main's handler.
inline int run_on_this_rank(const std::function<int()>& body) {
  return detect_launch().under_launcher ? run_or_abort(body) : body();
}

struct RegisterCommand {
  RegisterCommand(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace tessera::app
