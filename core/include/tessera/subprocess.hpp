// run_process(argv): starts a program with an argument vector (posix_spawn, never a shell), so no
// path, config name or option a user gives can become shell syntax. Tessera starts child processes
// only through this (tests/unit/test_no_shell.cpp checks the sources).
#pragma once
#include <string>
#include <vector>

namespace tessera {

struct ProcessResult {
  int exit_code = -1;    // the program's exit status, or -1 when a signal ended it
  int signal = 0;        // the signal that ended it, or 0
  std::string output;    // what it wrote to stdout (and to stderr when merge_stderr)
  bool ok() const { return exit_code == 0; }
  std::string describe() const;  // "exit code 3" / "killed by signal 9 (Killed)"
};

// argv[0] is the program: a path, or a bare name looked up in PATH. Its stdout is captured; its
// stderr goes to ours unless merge_stderr. Throws tessera::Error when it cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, bool merge_stderr = false);

}  // namespace tessera
