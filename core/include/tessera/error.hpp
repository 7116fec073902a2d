// Errors a user can act on. Every failure Tessera reports derives from tessera::Error; the message
// names the thing that is wrong (file, key, plugin, op) and what was expected instead.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tessera {

// The destructors are defined in core (error.cpp): that makes core the one home of these types'
// type information, so a plugin built with hidden visibility throws exceptions that core catches
// by type without relying on name comparison.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  ~Error() override;
};

// A configuration value that is unknown, of the wrong type or out of range.
class ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};
// A file (dataset, checkpoint, tokenizer) that is missing, truncated or corrupt.
class FormatError : public Error {
 public:
  using Error::Error;
  ~FormatError() override;
};
// A plugin that cannot be found, loaded or created.
class PluginError : public Error {
 public:
  using Error::Error;
  ~PluginError() override;
};
// Tensors of the wrong shape, dtype or device handed to an op or module.
class ShapeError : public Error {
 public:
  using Error::Error;
  ~ShapeError() override;
};

// A failure of the communication library, a bad rank/root/tag argument, or a collective past its
// deadline.
class CommError : public Error {
 public:
  using Error::Error;
  ~CommError() override;
};

}  // namespace tessera

// TESSERA_CHECK(cond, "format {}", args...) throws tessera::Error naming file:line.
#define TESSERA_CHECK(cond, ...)                                                              \
  do {                                                                                        \
    if (!(cond))                                                                              \
      throw ::tessera::Error(fmt::format("{}:{}: check '{}' failed: {}", __FILE__, __LINE__, \
                                         #cond, fmt::format(__VA_ARGS__)));                   \
  } while (0)

#define TESSERA_CHECK_SHAPE(cond, ...)                                                           \
  do {                                                                                           \
    if (!(cond)) throw ::tessera::ShapeError(fmt::format("{}: {}", __func__, fmt::format(__VA_ARGS__))); \
  } while (0)
