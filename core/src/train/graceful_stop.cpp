#include "tessera/train/graceful_stop.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tessera/error.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

struct NamedSignal {
  const char* name;
  int number;
};
// What a scheduler sends before it ends a job: Slurm's --signal (USR1/USR2 by convention), SIGTERM
// at the end of the time limit or on pre-emption, LSF's and Grid Engine's SIGUSR2/SIGXCPU, SIGHUP
// when a terminal goes away. Never SIGCONT (Slurm sends it along with SIGTERM), SIGKILL or SIGSTOP.
constexpr std::array<NamedSignal, 7> kSignals{{{"SIGTERM", SIGTERM},
                                               {"SIGINT", SIGINT},
                                               {"SIGUSR1", SIGUSR1},
                                               {"SIGUSR2", SIGUSR2},
                                               {"SIGHUP", SIGHUP},
                                               {"SIGQUIT", SIGQUIT},
                                               {"SIGXCPU", SIGXCPU}}};

// The process's record of the first stop signal (0: none). Lock-free, so the handler may store it.
std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free);
// Messages the handler writes, made before any handler is installed (formatting is not
// async-signal-safe). Indexed by signal number.
constexpr int kMaxSignal = 65;
std::array<std::array<char, 160>, kMaxSignal> g_first_message{}, g_second_message{};

void write_message(const std::array<char, 160>& m) {
  const ssize_t n = ::write(STDERR_FILENO, m.data(), std::strlen(m.data()));
  (void)n;  // nothing to do about a failed write in a signal handler
}

// C linkage for sigaction, a name of its own and hidden: a global `on_stop_signal` elsewhere in the
// process (the tessera executable's serve command had one) would otherwise interpose on this one.
extern "C" __attribute__((visibility("hidden"))) void tessera_graceful_stop_handler(int sig) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  int expected = 0;
  const bool first = g_received.compare_exchange_strong(expected, sig);
  if (sig > 0 && sig < kMaxSignal) write_message(first ? g_first_message[sig] : g_second_message[sig]);
  if (!first) {
    // Abort now: the signal's default action (termination), so the exit status says which signal.
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  errno = saved_errno;
}

}  // namespace

std::vector<int> StopOptions::signals() const {
  if (!signal_handler) return {};
  std::vector<int> s{SIGTERM, SIGINT};
  if (extra_signal != 0 && extra_signal != SIGTERM && extra_signal != SIGINT) s.push_back(extra_signal);
  return s;
}

const std::vector<std::string>& signal_names_accepted() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const NamedSignal& s : kSignals) n.emplace_back(s.name);
    return n;
  }();
  return names;
}

std::string signal_name(int signal) {
  for (const NamedSignal& s : kSignals)
    if (s.number == signal) return s.name;
  return fmt::format("signal {}", signal);
}

StopOptions read_stop_options(const Config& config) {
  ConfigSection t = config.section("training");
  StopOptions o;
  o.signal_handler = t.get_bool("exit_signal_handler", true);
  const std::string extra = t.get_string("exit_signal", "");
  if (!extra.empty()) {
    const std::string full = extra.rfind("SIG", 0) == 0 ? extra : "SIG" + extra;
    for (const NamedSignal& s : kSignals)
      if (full == s.name) o.extra_signal = s.number;
    if (o.extra_signal == 0)
      throw ConfigError(fmt::format("training.exit_signal = {} in {} is not one of: {}", plain_or_quoted(extra),
                                    t.origin("exit_signal"), fmt::join(signal_names_accepted(), ", ")));
    if (!o.signal_handler)
      throw ConfigError(fmt::format("training.exit_signal = {} in {} needs training.exit_signal_handler = true (it is "
                                    "false in {})",
                                    plain_or_quoted(extra), t.origin("exit_signal"), t.origin("exit_signal_handler")));
  }
  o.exit_interval = t.get_int("exit_interval", 0, 0, INT64_MAX / 2);
  o.exit_duration_in_mins = t.get_float("exit_duration_in_mins", 0.0, 0.0, 1e12);
  return o;
}

StopSignals::StopSignals(const std::vector<int>& signals) {
  g_received.store(0);
  for (int sig : signals) {
    if (sig <= 0 || sig >= kMaxSignal) throw Error(fmt::format("cannot catch signal {}", sig));
    const std::string name = signal_name(sig);
    fmt::format_to_n(g_first_message[sig].data(), g_first_message[sig].size() - 1,
                     "tessera: {} received: stopping after this iteration with a checkpoint (a second signal "
                     "aborts at once)\n{}",
                     name, '\0');
    fmt::format_to_n(g_second_message[sig].data(), g_second_message[sig].size() - 1,
                     "tessera: {} received while stopping: aborting now, without a checkpoint\n{}", name, '\0');
    struct sigaction action {};
    action.sa_handler = tessera_graceful_stop_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // system calls the signal interrupts carry on
    struct sigaction before {};
    if (::sigaction(sig, &action, &before) != 0)
      throw Error(fmt::format("cannot install a handler for {}: {}", name, std::strerror(errno)));
    previous_.emplace_back(sig, before);
  }
}

StopSignals::~StopSignals() {
  for (auto it = previous_.rbegin(); it != previous_.rend(); ++it) ::sigaction(it->first, &it->second, nullptr);
  g_received.store(0);
}

int StopSignals::received() const { return g_received.load(); }

}  // namespace tessera
