#include "tessera/error.hpp"

namespace tessera {
Error::~Error() = default;
ConfigError::~ConfigError() = default;
FormatError::~FormatError() = default;
PluginError::~PluginError() = default;
ShapeError::~ShapeError() = default;
CommError::~CommError() = default;
}  // namespace tessera
