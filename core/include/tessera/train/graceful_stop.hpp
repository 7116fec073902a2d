// Graceful stop (docs/reliability.md §7), as Megatron-LM's --exit-signal-handler, --exit-interval and
// --exit-duration-in-mins: a run told to stop finishes its current iteration, saves a resumable
// checkpoint and exits 0. Why a flag and an all-reduce: a signal handler may do almost nothing
// (async-signal-safe calls only), so it records the signal in an atomic and the training loop looks
// at it between iterations; and a signal may reach one rank only (or each at another moment), so the
// ranks agree on the flag with one small all-reduce (max) per iteration and stop after the same one.
#pragma once
#include <signal.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tessera/config.hpp"

namespace tessera {

struct StopOptions {
  // [training] exit_signal_handler: SIGTERM, SIGINT and exit_signal stop the run gracefully; false
  // leaves every signal's default action (the process dies at once).
  bool signal_handler = true;
  int extra_signal = 0;               // [training] exit_signal: e.g. SIGUSR1 (Slurm's --signal=USR1@90); 0: none
  std::int64_t exit_interval = 0;     // [training] exit_interval: stop after an iteration divisible by it; 0: off
  double exit_duration_in_mins = 0;   // [training] exit_duration_in_mins: stop once the run is older; 0: off
  // The signals the handler takes: SIGTERM, SIGINT and extra_signal (none without signal_handler).
  std::vector<int> signals() const;
};

// The [training] keys above, checked: exit_signal is one of the names signal_names_accepted() lists
// ("SIGUSR1" or "USR1"), and needs exit_signal_handler. ConfigError naming key and file otherwise.
StopOptions read_stop_options(const Config& config);
const std::vector<std::string>& signal_names_accepted();
// "SIGTERM" for SIGTERM; "signal N" for others.
std::string signal_name(int signal);

// While an object lives, each of `signals` is caught: the first one received by the process is
// recorded (received()), a second one (any of them) ends the process at once with that signal's
// default action (a non-zero exit). The destructor restores the handlers that were there before and
// forgets what was received. One object at a time per process.
class StopSignals {
 public:
  explicit StopSignals(const std::vector<int>& signals);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The first signal received since construction, or 0.
  int received() const;

 private:
  std::vector<std::pair<int, struct sigaction>> previous_;  // (signal, its handler before)
};

}  // namespace tessera
