// One fmt-based logger. Only rank 0 prints info and warnings by default (set log_state().rank, or
// all_ranks to hear every rank); lines from other ranks are prefixed by the rank so that
// multi-process logs stay readable.
#pragma once
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace tessera {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

struct LogState {
  LogLevel level = LogLevel::info;
  int rank = 0;
  bool all_ranks = false;  // print on every rank, not only rank 0
};
LogState& log_state();

void log_line(LogLevel level, const std::string& text);

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  log_line(LogLevel::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  log_line(LogLevel::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
  log_line(LogLevel::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (log_state().level <= LogLevel::debug) log_line(LogLevel::debug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tessera
