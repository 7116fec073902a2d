#include "op_profile.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "tessera/backend.hpp"

namespace tessera::ops::detail {

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::int64_t calls = 0;
  double seconds = 0;
};

struct Profile {
  std::mutex mutex;
  std::map<std::string, Totals> by_op;  // "op (dtype)"
  ~Profile() { print(); }
  void print() {
    std::lock_guard<std::mutex> lock(mutex);
    if (by_op.empty()) return;
    std::vector<std::pair<std::string, Totals>> rows(by_op.begin(), by_op.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    double total = 0;
    for (const auto& [_, t] : rows) total += t.seconds;
    std::fprintf(stderr, "%s", fmt::format("op profile (TESSERA_OP_PROFILE=1; the device synchronised at every op): "
                                           "{:.1f} ms in {} kinds of op\n{:<40} {:>9} {:>12} {:>7}\n",
                                           total * 1e3, rows.size(), "op (compute dtype)", "calls", "total ms", "share")
                                   .c_str());
    for (const auto& [name, t] : rows)
      std::fprintf(stderr, "%s", fmt::format("{:<40} {:>9} {:>12.2f} {:>6.1f}%\n", name, t.calls, t.seconds * 1e3,
                                             total > 0 ? 100.0 * t.seconds / total : 0.0)
                                     .c_str());
  }
};

Profile& profile() {
  static Profile p;  // printed when the process ends normally
  return p;
}

// This thread's open interval: the op dispatched last and when.
struct Open {
  std::string op;
  Clock::time_point since;
};
thread_local Open open_op;

}  // namespace

void reset_profile() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.by_op.clear();
  open_op = {};
}

bool op_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_OP_PROFILE");
    return v && std::string_view(v) == "1";
  }();
  return on;
}

void op_profile_mark(const char* op, DType compute, Device device) {
  Profile& p = profile();
  if (!device.is_cpu()) backend_of(device).synchronize(device.index);  // the previous op's device work ends here
  const Clock::time_point now = Clock::now();
  if (!open_op.op.empty()) {
    std::lock_guard<std::mutex> lock(p.mutex);
    Totals& t = p.by_op[open_op.op];
    ++t.calls;
    t.seconds += std::chrono::duration<double>(now - open_op.since).count();
  }
  open_op = {fmt::format("{} ({})", op, dtype_name(compute)), now};
}

}  // namespace tessera::ops::detail

namespace tessera::ops {
void reset_op_profile() {
  if (detail::op_profile_enabled()) detail::reset_profile();
}
}  // namespace tessera::ops
