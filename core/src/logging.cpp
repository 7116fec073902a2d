#include "tessera/logging.hpp"

#include <chrono>
#include <ctime>
#include <mutex>

namespace tessera {

LogState& log_state() {
  static LogState s;
  return s;
}

void log_line(LogLevel level, const std::string& text) {
  const LogState& s = log_state();
  if (level < s.level) return;
  if (s.rank != 0 && !s.all_ranks && level < LogLevel::error) return;
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&now));
  const char* tag = level == LogLevel::error ? " ERROR" : level == LogLevel::warn ? " WARN" : "";
  std::FILE* out = level >= LogLevel::warn ? stderr : stdout;
  if (s.all_ranks || s.rank != 0)
    fmt::print(out, "[{} r{}{}] {}\n", stamp, s.rank, tag, text);
  else
    fmt::print(out, "[{}{}] {}\n", stamp, tag, text);
  std::fflush(out);
}

}  // namespace tessera
